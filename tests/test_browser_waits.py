"""Real-browser check of the bounded waits (``gradreg.ui.bounded``): `streamlit run app.py` on the tiny zoo, driven
through Debian's Chromium with Playwright. The heavy controls (Attack lab curves with PGD then Square, the masking
lesson's ε, Saliency compare's metrics table) each finish with a progress status or are refused with a message, and
Cancel stops a running computation within ~2 s: a click reruns the script, which Streamlit interrupts at the
progress update before the next chunk. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import time

import pytest
from test_browser import SHOTS, _no_exception, _settle, page, streamlit_server  # noqa: F401 (page: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CAP = 7200  # seconds ($GRADREG_MAX_WAIT_SECONDS): the full-strength ensemble runs, long enough to be cancelled
TIMEOUT = 120  # seconds each walked control may take on the tiny zoo
STATUS = '[data-testid="stExpander"]'  # st.status draws an expander whose summary is its label


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_zoo):
    env = {"GRADREG_ZOO_DIR": str(tiny_zoo), "GRADREG_MAX_WAIT_SECONDS": str(CAP),
           "GRADREG_CHECKPOINT_DIR": str(tmp_path_factory.mktemp("user"))}
    with streamlit_server(tmp_path_factory, env) as url:
        yield url


def _outcome(tab, what: str, timeout: float = TIMEOUT) -> str:
    """Wait until the run whose label matches the pattern ``what`` has finished (its status reads "Computed …") or
    was refused ("Refused: …", naming the cap's variable); return which."""
    main, deadline = tab.get_by_test_id("stMainBlockContainer"), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if main.locator(STATUS, has_text=re.compile(f"Computed {what}")).count():
            return "computed"
        if main.get_by_text("Refused:").count():
            assert "GRADREG_MAX_WAIT_SECONDS" in main.get_by_text("Refused:").first.inner_text()
            return "refused"
        time.sleep(0.2)
    raise TimeoutError(f"{what}: neither finished nor refused within {timeout} s")


def _choose(tab, selectbox, option: str) -> None:
    selectbox.click()
    tab.get_by_role("option", name=option, exact=True).click()


def test_heavy_controls_finish_with_progress_or_are_refused_and_cancel_stops_a_run(page, server, record_property):
    page.goto(f"{server}/attack_lab")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    curves = page.locator('[data-testid="stSelectbox"]').filter(has_text="Attack").nth(1)  # the curves' attack
    for method, label in (("pgd", "PGD"), ("square", "Square (gradient-free)")):
        _choose(page, curves, label)
        assert _outcome(page, re.escape(f"{label} accuracy")) in ("computed", "refused"), method
        _settle(page)
        _no_exception(page)
    page.screenshot(path=str(SHOTS / "waits_square.png"), full_page=True)

    _choose(page, curves, "AutoAttack ensemble (APGD-CE, APGD-T, Square)")
    _settle(page)
    page.get_by_text("Full strength (slow)").click()  # 5 000 queries and 100 steps: one image per chunk, a long run
    main = page.get_by_test_id("stMainBlockContainer")
    main.locator('[data-testid="stProgress"]', has_text=re.compile(r"ε [0-9.]+: \d+ of \d+")).first.wait_for()
    time.sleep(1.5)
    page.screenshot(path=str(SHOTS / "waits_running.png"), full_page=True)
    clicked = time.monotonic()
    main.get_by_role("button", name="Cancel").click()
    main.get_by_text("Cancelled:").wait_for(timeout=10_000)
    latency = time.monotonic() - clicked
    record_property("cancel_seconds", round(latency, 2))  # in --junitxml reports
    assert latency < 2.5, f"Cancel took {latency:.1f} s to stop the run (a chunk is ~1 s)"
    _settle(page)
    assert not main.locator('[data-testid="stProgress"] >> visible=true').count(), "no progress after the cancel"
    page.screenshot(path=str(SHOTS / "waits_cancelled.png"), full_page=True)
    _no_exception(page)

    page.goto(f"{server}/masking")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    thumb.press("ArrowLeft")  # ε 0.2 → 0.15: new masking checks for every defence
    assert _outcome(page, r"the masking checks .* at ε 0\.15") in ("computed", "refused")
    _settle(page)
    _no_exception(page)

    page.goto(f"{server}/saliency_compare")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    _settle(page)
    page.get_by_text("Compute the metrics table").click()
    assert _outcome(page, "the metrics") in ("computed", "refused")
    _settle(page)
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "waits_metrics.png"), full_page=True)
