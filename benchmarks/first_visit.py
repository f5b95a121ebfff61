"""The first visit of every page after a fresh process: server time through AppTest, the page opened directly (as a
link would), in a new Python process per page, so nothing is imported, loaded or cached beforehand.

That first run pays for what only the first user after a start pays: importing torch and the library, loading the
models, and computing what the page shows. Targets (issue "Instant from the first click"): ≤ 0.5 s for Home, the
λ explorer and the Attack lab, ≤ 1 s for every other page. The pages are read from ``app.py``'s ``st.Page`` calls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.report import row

ROOT = Path(__file__).resolve().parent.parent
FAST = ("home", "lambda_explorer", "attack_lab")  # the pages a class opens first
TARGET_S, FAST_TARGET_S = 1.0, 0.5
PROBE = """
import json, os, sys, time
os.chdir({root!r})
from streamlit.testing.v1 import AppTest
app = AppTest.from_file("app.py", default_timeout=600)
app.switch_page({page!r})
start = time.perf_counter()
app.run()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "exceptions": [e.value for e in app.exception]}}))
"""


def pages() -> list[tuple[str, str]]:
    """(path, title) of every page ``app.py`` registers, in its order."""
    text = (ROOT / "app.py").read_text()
    return re.findall(r'st\.Page\("([^"]+)", title="([^"]+)"', text)


def first_visit(page: str, *, timeout: float = 600) -> float:
    """Seconds of the first script run of ``page`` in a fresh process (``RuntimeError`` if the page raised)."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), page=page)], capture_output=True,
                         text=True, timeout=timeout, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{page}: the probe failed: {out.stderr[-500:]}")
    result = json.loads(lines[-1])
    if result["exceptions"]:
        raise RuntimeError(f"{page} raised: {result['exceptions']}")
    return result["seconds"]


def measure(*, only: tuple[str, ...] | None = None) -> tuple[list, dict]:
    """One row per page: its first visit's server time against its target."""
    rows, raw = [], {}
    for path, title in pages():
        name = Path(path).stem
        if only and name not in only:
            continue
        seconds = first_visit(path)
        target = FAST_TARGET_S if name in FAST else TARGET_S
        raw[name] = seconds
        rows.append(row("first visit", f"{title}: first visit after a fresh process (server time)", None, seconds,
                        unit="s", target=f"≤ {target:g} s", met=seconds <= target, seconds=seconds))
    return rows, raw
