"""Real-browser check of shareable views: a deep link's query parameters set the widgets, moving a slider (inside a
fragment) rewrites the address bar, Back restores the previous view, and a lesson preset on Home opens its page with its settings. Screenshots go to
``artifacts/screenshots/``. Without /usr/bin/chromium the tests skip, except under CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
SLIDERS = '[data-testid="stSlider"]'

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
    port, log = _free_port(), tmp_path_factory.mktemp("streamlit") / "server.log"
    env = os.environ | {"GRADREG_ZOO_DIR": str(tiny_zoo),
                        "GRADREG_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("user"))}
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
        tab = browser.new_page(viewport={"width": 1440, "height": 2400})
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


def _slider(tab, label: str):
    return tab.locator(SLIDERS).filter(has_text=label).first


def _shown(slider) -> str:
    return slider.locator('[data-testid="stSliderThumbValue"]').first.inner_text()


def _query(tab) -> dict[str, list[str]]:
    return parse_qs(urlparse(tab.url).query, keep_blank_values=True)


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0, tab.locator(
        '[data-testid="stException"]').first.inner_text()


def test_deep_link_sets_the_slider_and_moving_it_rewrites_the_url(page, server):
    page.goto(f"{server}/lambda_explorer?lambda.eps=0.2&lambda.lam.grad_y=10")
    page.wait_for_selector(SLIDERS)
    _settle(page)
    eps, lam = _slider(page, "ε of the attacks"), _slider(page, "λ_eff")
    assert _shown(eps) == "0.2" and _shown(lam) == "10", "the link's values are on the sliders"
    assert _query(page) == {"lambda.eps": ["0.2"], "lambda.lam.grad_y": ["10"]}, "an unchanged view keeps its URL"
    eps.locator('input[type="range"]').focus()
    page.keyboard.press("ArrowRight")
    _settle(page)
    page.wait_for_function("() => window.location.search.includes('lambda.eps=0.25')", timeout=30_000)
    _no_exception(page)
    assert _shown(eps) == "0.25"
    assert _query(page) == {"lambda.eps": ["0.25"], "lambda.lam.grad_y": ["10"]}
    page.screenshot(path=str(SHOTS / "url_deep_link_moved.png"), full_page=True)
    page.go_back()  # the browser's history holds each view: Back restores the link's value
    page.wait_for_function("() => window.location.search.includes('lambda.eps=0.2&')", timeout=30_000)
    _settle(page)
    assert _shown(_slider(page, "ε of the attacks")) == "0.2"


def test_a_bad_link_warns_and_a_preset_opens_its_view(page, server):
    page.goto(f"{server}/attack_lab?attack.eps.fgsm.linf=9&attack.method=fgsm")
    page.wait_for_selector(SLIDERS)
    _settle(page)
    assert "attack.eps.fgsm.linf=9" in page.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
    assert _query(page) == {"attack.method": ["fgsm"]}, "the refused value leaves the address bar"
    page.goto(server)
    page.get_by_text("The λ trade-off").click()
    page.wait_for_selector(SLIDERS)
    _settle(page)
    _no_exception(page)
    assert urlparse(page.url).path.endswith("/lambda_explorer")
    assert _shown(_slider(page, "λ_eff")) == "10" and _query(page)["lambda.regularizer"] == ["grad_y"]
    page.screenshot(path=str(SHOTS / "url_preset_lambda.png"), full_page=True)


def test_teacher_link_locks_the_controls_and_keeps_the_lock(page, server):
    page.goto(f"{server}/attack_lab?teacher=1&attack.method=pgd&attack.eps.pgd.linf=0.2")
    page.wait_for_selector(SLIDERS)
    _settle(page)
    _no_exception(page)
    assert "controls locked" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Train" not in page.locator('[data-testid="stSidebarNav"]').inner_text().split("\n")
    assert page.locator('[data-testid="stExpander"]').filter(has_text="settings").count() == 0
    assert float(_shown(_slider(page, "ε, L∞ radius"))) == 0.2
    page.screenshot(path=str(SHOTS / "url_teacher_attack_lab.png"), full_page=True)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Home").click()
    page.get_by_text("Lessons: prepared views").wait_for()
    _settle(page)
    assert _query(page) == {"teacher": ["1"]}, "the lock survives a page change"
    page.screenshot(path=str(SHOTS / "url_teacher_home.png"), full_page=True)
