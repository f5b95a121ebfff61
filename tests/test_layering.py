"""Architecture guards: the library never imports streamlit (but the ui*.py modules), pages never import torch,
no pickles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def test_only_ui_module_imports_streamlit():
    offenders = [p.name for p in (ROOT / "gradreg").glob("*.py") if p.name != "ui.py" and "streamlit" in _imports(p)]
    assert offenders == []


def test_pages_do_not_import_torch():
    pages = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    assert pages, "the dashboard has pages"
    offenders = [p.name for p in pages if {"torch", "captum"} & _imports(p)]
    assert offenders == []


def test_nothing_unpickles():
    sources = list((ROOT / "gradreg").rglob("*.py")) + list(ROOT.glob("*.py")) + list((ROOT / "pages").glob("*.py"))
    bad = [p.name for p in sources
           if "pickle" in _imports(p) or "torch.load(" in p.read_text() or "weights_only=False" in p.read_text()]
    assert bad == []


def test_one_checkpoint_loader():
    readers = [p.name for p in (ROOT / "gradreg").glob("*.py") if "safetensors" in _imports(p)]
    assert readers == ["checkpoints.py"]
