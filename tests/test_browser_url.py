"""Real-browser check of shareable views: a deep link's query parameters set the widgets, moving a slider (inside a
fragment) rewrites the address bar, Back restores the previous view, and a lesson preset on Home opens its page with its settings. Screenshots go to
``artifacts/screenshots/``. Without /usr/bin/chromium the tests skip, except under CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from test_browser import SHOTS, _settle, page, server  # noqa: F401 (fixtures)

SLIDERS = '[data-testid="stSlider"]'

pytestmark = pytest.mark.browser


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
    assert _shown(_slider(page, "λ_eff")) == "110 (the authors')" and _query(page)["lambda.regularizer"] == ["grad_y"]
    page.screenshot(path=str(SHOTS / "url_preset_lambda.png"), full_page=True)


def test_teacher_link_locks_the_controls_and_keeps_the_lock(page, server):
    page.goto(f"{server}/attack_lab?teacher=1&attack.method=pgd&attack.eps.pgd.linf=0.2")
    page.wait_for_selector(SLIDERS)
    _settle(page)
    _no_exception(page)
    assert "controls locked" in page.locator('[data-testid="stSidebar"]').inner_text()
    links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]')
    assert links.filter(has_text="Home").count() == 1, "the navigation is there"
    assert links.filter(has_text="Train").count() == 0, "teacher mode hides the Train page"
    assert page.locator('[data-testid="stExpander"]').filter(has_text="settings").count() == 0
    assert float(_shown(_slider(page, "ε, L∞ radius"))) == 0.2
    page.screenshot(path=str(SHOTS / "url_teacher_attack_lab.png"), full_page=True)
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Home").click()
    page.get_by_text("Lessons: prepared views").wait_for()
    _settle(page)
    assert _query(page) == {"teacher": ["1"]}, "the lock survives a page change"
    page.screenshot(path=str(SHOTS / "url_teacher_home.png"), full_page=True)
