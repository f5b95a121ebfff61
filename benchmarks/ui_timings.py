"""Server time of the dashboard's interactions, through Streamlit's AppTest (the script run a browser would wait
for, without the network): a λ slider move, an ε change with 4 models in the Attack lab, page switches.

Every move goes to a value not seen before in the session, so what Streamlit caches is hit only as it would be for
a real user. Runs against ``$GRADREG_ZOO_DIR`` (default: the shipped zoo).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from benchmarks.report import row
from benchmarks.timing import median

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("pages/home.py", "pages/lambda_explorer.py", "pages/attack_lab.py", "pages/saliency_compare.py",
         "pages/train.py", "pages/models.py")
TARGETS_MS = {"lambda": 150, "eps": 250, "page": 300}


@contextmanager
def _in_root() -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(ROOT)  # app.py names its pages relative to the repository root
    try:
        yield
    finally:
        os.chdir(cwd)


def _timed_run(app, action=None) -> float:
    start = time.perf_counter()
    (action(app) if action else app).run()
    seconds = time.perf_counter() - start
    if app.exception:
        raise RuntimeError(f"the app raised: {[e.value for e in app.exception]}")
    return seconds


def _open(page: str):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    app.run()
    app.switch_page(page)
    _timed_run(app)
    return app


def _lambda_moves(moves: int) -> list[float]:
    app = _open("pages/lambda_explorer.py")
    (slider,) = [s for s in app.select_slider if s.key and s.key.startswith("lambda.lam.")]
    lams = [float(o.split()[0]) for o in slider.options]  # shown as "110 (the authors')" for the authors' λ
    values = [v for v in lams if v != slider.value][:moves]
    return [_timed_run(app, lambda a, v=v: a.select_slider(key=slider.key).set_value(v)) for v in values]


def _eps_changes(changes: int) -> tuple[list[float], int]:
    app = _open("pages/attack_lab.py")
    models = len(app.multiselect(key="attack.models").value)
    (slider,) = [s for s in app.slider if s.key and s.key.startswith("attack.eps.")]
    values = [round(0.11 + 0.02 * i, 2) for i in range(changes)]
    return [_timed_run(app, lambda a, v=v: a.slider(key=slider.key).set_value(v)) for v in values], models


def _page_switches() -> tuple[dict, dict]:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    _timed_run(app)
    first = {page: _timed_run(app, lambda a, p=page: a.switch_page(p)) for page in PAGES}
    warm = {page: _timed_run(app, lambda a, p=page: a.switch_page(p)) for page in PAGES}
    return first, warm


def measure(*, moves: int) -> tuple[list, dict]:
    """Rows for the three interactions (server milliseconds, median of ``moves`` changes) and the raw seconds."""
    with _in_root():
        lam = _lambda_moves(moves)
        eps, models = _eps_changes(moves)
        first, warm = _page_switches()
    rows = [
        row("ui", f"λ slider move (median of {len(lam)})", None, median(lam) * 1000, unit="ms",
            target=f"≤ {TARGETS_MS['lambda']} ms", met=median(lam) * 1000 <= TARGETS_MS["lambda"],
            seconds=median(lam)),
        row("ui", f"ε change, Attack lab with {models} models (median of {len(eps)})", None, median(eps) * 1000,
            unit="ms", target=f"≤ {TARGETS_MS['eps']} ms",
            met=median(eps) * 1000 <= TARGETS_MS["eps"] and models >= 4,
            seconds=median(eps)),
        row("ui", f"page switch, caches warm (slowest of {len(warm)} pages: {max(warm, key=warm.get)})", None,
            max(warm.values()) * 1000, unit="ms", target=f"≤ {TARGETS_MS['page']} ms",
            met=max(warm.values()) * 1000 <= TARGETS_MS["page"], seconds=max(warm.values())),
        row("ui", f"first visit of a page in a fresh process (slowest: {max(first, key=first.get)})", None,
            max(first.values()) * 1000, unit="ms", target="—", met=None, seconds=max(first.values())),
    ]
    raw = {"lambda_moves": lam, "eps_changes": eps, "models": models, "first_visit": first, "warm_switch": warm,
           "zoo": os.environ.get("GRADREG_ZOO_DIR", "checkpoints")}
    return rows, raw
