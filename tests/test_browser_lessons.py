"""Real-browser check of the lesson pages: `streamlit run app.py` on the tiny zoo, driven through Debian's Chromium
with Playwright (the server fixture is tests/test_browser.py's). Each page must draw its Plotly charts without an
exception box; screenshots go to ``artifacts/screenshots/``. Without /usr/bin/chromium the tests skip, except under
CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
PAGES = ("transfer", "masking", "morphs")
CHART = '[data-testid="stPlotlyChart"]'
THUMBS = '[data-testid="stSlider"] input[type="range"]'

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_zoo):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    zoo = tiny_zoo
    port, log = _free_port(), tmp_path_factory.mktemp("streamlit") / "server.log"
    env = os.environ | {"GRADREG_ZOO_DIR": str(zoo), "GRADREG_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("user"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        tab = browser.new_page(viewport={"width": 1440, "height": 2400})  # the app scrolls inside; tall shows all
        tab.set_default_timeout(90_000)
        yield tab
        browser.close()


def _settle(tab, quiet: float = 1.5, timeout: float = 120) -> None:
    """Wait until the app has shown no 'running' indicator for ``quiet`` seconds."""
    deadline, calm_since = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        if tab.locator('[data-testid="stStatusWidget"]').count():
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        time.sleep(0.2)
    raise TimeoutError("the app kept running")


def _open(tab, server: str, name: str) -> None:
    tab.goto(f"{server}/{name}")
    tab.wait_for_selector(CHART)
    _settle(tab)


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0, tab.locator(
        '[data-testid="stException"]').first.inner_text()


@pytest.mark.parametrize("name", PAGES)
def test_lesson_page_renders(page, server, name):
    _open(page, server, name)
    _no_exception(page)
    assert page.locator(CHART).count() >= 1
    page.screenshot(path=str(SHOTS / f"lesson_{name}.png"), full_page=True)


def test_transfer_eps_slider_redraws_the_matrix(page, server):
    _open(page, server, "transfer")
    title = page.locator(CHART).first.locator(".gtitle")
    before = title.text_content()
    thumb = page.locator(THUMBS).first
    thumb.focus()
    thumb.press("ArrowRight")
    _settle(page)
    page.wait_for_function("t => document.querySelector('.gtitle').textContent !== t", arg=before)
    _no_exception(page)
    assert title.text_content() != before, "moving ε did not redraw the matrix"
    page.screenshot(path=str(SHOTS / "lesson_transfer_moved.png"), full_page=True)
