"""Architecture guards: the package graph points down with no circle, the library never imports streamlit (but the
gradreg.ui package), pages never import torch nor cache anything themselves, modules stay small, no pickles.

The module graph is read with ``ast`` from every module of ``gradreg/``, imports inside functions included: an import
done lazily still belongs to the architecture.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "gradreg"
MAX_LINES = 350  # STYLE.md §2.1: about 300 lines a module; split by concept beyond that
# The packages, lowest first: each may import itself and the packages named here, nothing else of gradreg. The root
# package only re-exports the public API. (README, "Library".)
LAYERS = {
    "core": set(),
    "viz": set(),
    "fastgrad": {"core"},
    "attacks": {"core", "fastgrad"},
    "explain": {"core", "attacks"},
    "evaluation": {"core", "attacks"},
    "training": {"core", "fastgrad", "attacks", "evaluation"},
    "sweeps": {"core", "attacks", "evaluation", "training"},
    "paper": {"core", "attacks", "evaluation", "explain", "training", "sweeps", "viz"},
    "lessons": {"core", "attacks", "evaluation", "explain", "training", "paper"},
    "cli": {"core", "attacks", "evaluation", "training", "sweeps", "paper"},
    "ui": {"core", "attacks", "evaluation", "explain", "training", "sweeps", "paper", "lessons", "viz"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def _package(module: str) -> str:
    """``gradreg.attacks.registry`` → ``attacks``; the root package and ``gradreg.__main__`` → ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""


def _targets(path: Path) -> set[str]:
    """The gradreg modules ``path`` imports, anywhere in it: ``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``; ``import a.b.c`` is ``a.b.c``."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name.split(".")[0] == "gradreg"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gradreg":
            assert node.level == 0, f"{path}: relative import"
            targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                        for a in node.names}
    unknown = targets - set(MODULES)
    assert not unknown, f"{path} imports modules that do not exist: {sorted(unknown)}"
    return targets


GRAPH = {module: _targets(path) - {module} for module, path in MODULES.items()}


def _circle() -> list[str]:
    """One import circle of ``GRAPH`` (a list of modules, the first repeated at the end), or []."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        stack.pop()
        return []

    for module in sorted(GRAPH):
        if module not in state and (found := visit(module)):
            return found
    return []


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_gradreg_does_not_import_streamlit():
    code = "import sys, gradreg, gradreg.viz; assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_module_graph_has_no_circle():
    assert len(GRAPH) > 40 and GRAPH["gradreg"], "every module is read"
    assert _circle() == [], " → ".join(_circle())


def test_packages_import_only_the_layers_below():
    assert set(map(_package, MODULES)) - {""} == set(LAYERS), "every package has its place in LAYERS"
    upward = sorted(f"{module} → {target}" for module, targets in GRAPH.items() for target in targets
                    if _package(module) and _package(target) != _package(module)
                    and _package(target) not in LAYERS[_package(module)])
    assert upward == []


def test_the_base_imports_nothing_else_of_gradreg():
    outside = sorted(f"{m} → {t}" for m, ts in GRAPH.items() if _package(m) == "core" for t in ts
                     if _package(t) != "core")
    assert outside == []


def test_attacks_never_import_training():
    reached, todo = set(), [m for m in MODULES if _package(m) == "attacks"]
    while todo:  # everything the attacks import, directly or not
        for target in GRAPH[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert not {m for m in reached if _package(m) in ("training", "evaluation", "paper", "lessons", "cli", "ui")}


def test_import_gradreg_keeps_its_api_and_loads_saliency_lazily():
    code = ("import sys, gradreg; assert 'captum' not in sys.modules and 'gradreg.explain.saliency' not in sys.modules; "
            "assert callable(gradreg.saliency) and 'saliency' in gradreg.__all__; "
            "assert all(hasattr(gradreg, name) for name in gradreg.__all__); assert 'captum' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_only_ui_package_imports_streamlit():
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "gradreg").rglob("*.py")
                 if (ROOT / "gradreg" / "ui") not in p.parents and "streamlit" in _imports(p)]
    assert offenders == []


def test_pages_do_not_import_torch():
    pages = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    assert pages, "the dashboard has pages"
    offenders = [p.name for p in pages if {"torch", "captum"} & _imports(p)]
    assert offenders == []


def test_pages_hold_no_caches_of_their_own():
    """Cached computations live in ``gradreg.ui`` (STYLE.md §2.6), keyed by primitives; a page only calls them."""
    offenders = [p.name for p in sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
                 for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, ast.Attribute) and node.attr in ("cache_data", "cache_resource")]
    assert offenders == []


def test_modules_stay_small():
    sizes = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_nothing_unpickles():
    sources = list((ROOT / "gradreg").rglob("*.py")) + list(ROOT.glob("*.py")) + list((ROOT / "pages").glob("*.py"))
    bad = [p.name for p in sources
           if "pickle" in _imports(p) or "torch.load(" in p.read_text() or "weights_only=False" in p.read_text()]
    assert bad == []


def test_one_checkpoint_loader():
    readers = sorted(p.name for p in (ROOT / "gradreg").rglob("*.py") if "safetensors" in _imports(p))
    # checkpoints.py reads models; precomputed.py the zoo's precomputed lesson views (numpy arrays, no model, no torch)
    assert readers == ["checkpoints.py", "precomputed.py"]
    assert "torch" not in _imports(LIBRARY / "lessons" / "precomputed.py")
