"""Real-browser check of the lesson pages: `streamlit run app.py` on the tiny zoo, driven through Debian's Chromium
with Playwright (the server fixture is tests/test_browser.py's). Each page must draw its Plotly charts without an
exception box; screenshots go to ``artifacts/screenshots/``. Without /usr/bin/chromium the tests skip, except under
CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import pytest
from test_browser import SHOTS, _no_exception, _settle, page, server  # noqa: F401 (fixtures)

PAGES = ("transfer", "masking", "morphs")
CHART = '[data-testid="stPlotlyChart"]'
THUMBS = '[data-testid="stSlider"] input[type="range"]'

pytestmark = pytest.mark.browser


def _open(tab, server: str, name: str) -> None:
    tab.goto(f"{server}/{name}")
    tab.wait_for_selector(CHART)
    _settle(tab)


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
