"""First visits (issue "Instant from the first click"), on the shipped zoo, 2 cores:

- **first answer**: `streamlit run app.py` in a fresh process, Chromium opening it, until Home's title and the
  navigation are shown (target ≤ 2.5 s); and, without a target, until Home is completely drawn. Needs Chromium
  (``/usr/bin/chromium``) and Playwright; skipped with a note without them.
- **first visit of each page on a started server**: a fresh Python process, a first visitor opens Home (which starts
  the warm-up, ``gradreg.ui.warm``), the warm-up finishes, then a new visitor opens the page: server time of that
  page's first script run, through AppTest (targets: ≤ 0.5 s for Home, the λ explorer and the Attack lab, ≤ 1 s for
  every other page). Its default view is read from the zoo's precomputed lessons.
- **cold, without a target**: the same page as the very first request of a fresh process with the warm-up off, so
  it pays for importing torch and the library, loading the models and reading the lessons itself.

The pages are read from ``app.py``'s ``st.Page`` calls (``gradreg.ui.precompute.pages``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.report import row

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
FAST = ("home", "lambda_explorer", "attack_lab")  # the pages a class opens first
TARGET_S, FAST_TARGET_S, ANSWER_TARGET_S = 1.0, 0.5, 2.5
PROBE = """
import json, os, sys, time
os.chdir({root!r})
from streamlit.testing.v1 import AppTest
from gradreg.ui import warm
if {warm!r}:
    AppTest.from_file("app.py", default_timeout=600).run()  # the first visitor, on Home: starts the warm-up
    assert warm.wait(600), "the warm-up did not finish"
app = AppTest.from_file("app.py", default_timeout=600)
app.switch_page({page!r})
start = time.perf_counter()
app.run()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "exceptions": [e.value for e in app.exception], "warm": warm.report()}}))
"""


def pages() -> list[tuple[str, str]]:
    """(path, title) of every page ``app.py`` registers, in its order."""
    from gradreg.ui.precompute import pages as registered

    return registered(ROOT / "app.py")


def first_visit(page: str, *, warm: bool, timeout: float = 600) -> dict:
    """The first script run of ``page`` in a fresh process: after Home and the warm-up when ``warm``, else as the
    process's very first request with the warm-up off. ``RuntimeError`` if the page raised."""
    env = os.environ | {"PYTHONWARNINGS": "ignore", "GRADREG_WARM_START": "1" if warm else "0"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), page=page, warm=warm)],
                         capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{page}: the probe failed: {out.stderr[-500:]}")
    result = json.loads(lines[-1])
    if result["exceptions"]:
        raise RuntimeError(f"{page} raised: {result['exceptions']}")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_answer(*, timeout: float = 120) -> dict:
    """Seconds from spawning ``streamlit run app.py`` until Chromium shows Home's title and navigation, and until
    Home finished drawing (its script run over, every chart drawn)."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(port), "--browser.gatherUsageStats", "false"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        start = time.perf_counter()
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=os.environ | {"GRADREG_WARM_START": "1"})
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read()
                    break
                except OSError:
                    if server.poll() is not None or time.perf_counter() - start > timeout:
                        raise RuntimeError("streamlit did not become healthy") from None
                    time.sleep(0.02)
            page.goto(url)
            page.get_by_role("heading", name="gradreg: regularizing input gradients").wait_for(timeout=timeout * 1000)
            page.locator('[data-testid="stSidebar"] a', has_text="Attack lab").wait_for(timeout=timeout * 1000)
            answer = time.perf_counter() - start
            page.locator(".js-plotly-plot").first.wait_for(timeout=timeout * 1000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                   timeout=timeout * 1000)
            return {"answer": answer, "drawn": time.perf_counter() - start}
        finally:
            server.terminate()
            server.wait(timeout=15)
            browser.close()


def _browser() -> str:
    """Why Chromium cannot be driven here, or ""."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return ""


def measure(*, only: tuple[str, ...] | None = None, browser: bool = True) -> tuple[list, dict]:
    """The first-answer rows (when ``browser``), then per page its warm first visit (with its target) and its cold
    one (informational)."""
    rows, raw = [], {"warm": {}, "cold": {}}
    if browser and not (why := _browser()):
        raw["answer"] = first_answer()
        rows.append(row("first visit", "`streamlit run app.py` until Chromium shows Home's title and navigation",
                        None, raw["answer"]["answer"], unit="s", target=f"≤ {ANSWER_TARGET_S:g} s",
                        met=raw["answer"]["answer"] <= ANSWER_TARGET_S, seconds=raw["answer"]["answer"]))
        rows.append(row("first visit", "`streamlit run app.py` until Home is completely drawn (its maps and models)",
                        None, raw["answer"]["drawn"], unit="s", target="informational", met=None,
                        seconds=raw["answer"]["drawn"]))
    elif browser:
        raw["answer"] = f"not measured: {why}"
    for path, title in pages():
        name = Path(path).stem
        if only and name not in only:
            continue
        warm, cold = first_visit(path, warm=True), first_visit(path, warm=False)
        raw["warm"][name], raw["cold"][name] = warm, cold
        target = FAST_TARGET_S if name in FAST else TARGET_S
        rows.append(row("first visit", f"{title}: first visit on a started server (after its warm-up)", None,
                        warm["seconds"], unit="s", target=f"≤ {target:g} s", met=warm["seconds"] <= target,
                        seconds=warm["seconds"]))
        rows.append(row("first visit", f"{title}: first request of a cold process (warm-up off)", None,
                        cold["seconds"], unit="s", target="informational", met=None, seconds=cold["seconds"]))
    return rows, raw
