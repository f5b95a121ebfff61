"""The library installs as a package for notebooks outside this checkout (Colab, issue 21): ``pyproject.toml`` pins
what ``requirements.txt`` pins, and a wheel built offline holds every sub-package and the MNIST files, imports from
a clean ``sys.path`` without Streamlit, reads MNIST from its own files and finds a zoo through ``$GRADREG_ZOO_DIR``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gradreg"
MNIST = sorted(p.relative_to(ROOT).as_posix() for p in (PACKAGE / "assets" / "mnist").glob("*.gz"))


def _pins(lines) -> dict[str, str]:
    """``name==version`` requirements by lower-case name (extras kept in the spec: ``ray[tune]``)."""
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z,]+\])?==([0-9][A-Za-z0-9.]*)", line)
            assert match, f"not an exact pin: {line!r}"
            pins[match[1].lower()] = line
    return pins


def test_the_package_pins_exactly_what_requirements_txt_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    assert _pins(declared) == _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert "streamlit" not in _pins(project["dependencies"]), "the library runs without the dashboard"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the sources (a build in place would leave build/ in the checkout)."""
    if shutil.which("pip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("no pip beside this interpreter")
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(PACKAGE, source / "gradreg", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=120)
    (built,) = out.glob("gradreg-*.whl")
    return built


def test_the_wheel_holds_every_subpackage_and_the_mnist_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("__init__.py"))
    assert len(packages) > 10
    missing = [p for p in packages if f"{p}/__init__.py" not in names] + [f for f in MNIST if f not in names]
    assert len(MNIST) == 4 and not missing, missing
    tops = {name.split("/")[0] for name in names}
    strays = sorted(top for top in tops if top != "gradreg" and not top.endswith(".dist-info"))
    assert not strays, f"the wheel holds more than the library: {strays}"  # no tests/, pages/, checkpoints/


CHECK = """
import importlib.abc, sys
class NoStreamlit(importlib.abc.MetaPathFinder):  # as in Colab without the app's extra
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "streamlit":
            raise ImportError("streamlit is not installed here")
sys.meta_path.insert(0, NoStreamlit())
sys.path.insert(0, sys.argv[1])
import gradreg
from gradreg.core.data import load_dataset
from gradreg.paper.zoo import read_manifest
from gradreg.training.checkpoints import zoo_dir
assert gradreg.__file__.startswith(sys.argv[1]), gradreg.__file__
x, y = load_dataset("mnist", "test").tensors
assert tuple(x.shape) == (10000, 1, 28, 28), x.shape
manifest = read_manifest(zoo_dir())
assert str(zoo_dir()) == sys.argv[2] and manifest["models"], zoo_dir()
assert not [m for m in sys.modules if m.split(".")[0] == "streamlit" or m.startswith("gradreg.ui")]
print("ok", gradreg.__version__, len(manifest["models"]))
"""


def test_the_unpacked_wheel_imports_without_streamlit_reads_mnist_and_finds_the_zoo(wheel, tmp_path):
    unpacked, zoo = tmp_path / "site", ROOT / "checkpoints"  # Colab: a checkout's zoo, named by the variable
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "GRADREG_ZOO_DIR": str(zoo),
           "GRADREG_DATA_DIR": str(tmp_path / "data")}  # nothing of this checkout on the path (-I: no cwd either)
    run = subprocess.run([sys.executable, "-I", "-c", CHECK, str(unpacked), str(zoo)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok "), run.stdout
