"""notebooks/lecture.ipynb, the paper in about 20 cells: it runs top to bottom offline, so it never rots.

The notebook is executed by nbclient in a fresh ``python3`` kernel of the interpreter that runs the tests, started in
``notebooks/`` with the repository *not* on ``PYTHONPATH`` (as Jupyter starts it), so its setup cell has to find
gradreg on its own. Lecturers reuse it in Colab, so it must use the library only (no Streamlit, no ``gradreg.ui``),
and it is stored without outputs so that its diffs stay readable.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "lecture.ipynb"
CELL_TIMEOUT = 300  # seconds per cell; the strong-attack cell, the slowest, takes about a minute on one busy core
FORBIDDEN = ("streamlit", "gradreg.ui")
PLOTLY = "application/vnd.plotly.v1+json"


def _notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def _imported(source: str) -> set[str]:
    """Every module a cell imports, ``from a import b`` also as ``a.b``; IPython lines (``!pip``, ``%cd``) skipped."""
    python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%")))
    names: set[str] = set()
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_notebook_is_valid_nbformat_4_and_stored_without_outputs():
    nb = _notebook()
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"cells {dirty} carry outputs or execution counts: clear them before committing"


def test_the_notebook_uses_the_library_and_never_the_ui():
    sources = _code_cells(_notebook())
    imported = set().union(*map(_imported, sources))
    assert any(name == "gradreg" or name.startswith("gradreg.") for name in imported)
    forbidden = sorted(name for name in imported for bad in FORBIDDEN if name == bad or name.startswith(bad + "."))
    assert not forbidden, f"the notebook imports {forbidden}; it must run in Colab without Streamlit"
    # importlib, __import__ or a pip install would dodge the import check: no code cell may name them at all.
    assert not [i for i, source in enumerate(sources) if "streamlit" in source.lower() or "gradreg.ui" in source]


def test_the_notebook_runs_top_to_bottom_offline_in_the_test_interpreter():
    nb = _notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))  # which interpreter ran it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADREG_ZOO_DIR")}
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env=env | {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")})  # raises on any cell's error

    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert nb.cells[-1].outputs[0].text.strip() == sys.prefix  # the kernel is this venv's python, not another one
    figures = sum(PLOTLY in output.get("data", {}) for output in outputs)
    assert figures >= 4, f"expected the notebook's 4 Plotly figures, got {figures}"
