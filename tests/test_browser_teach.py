"""Real-browser check of the teaching pages: a stroke drawn with the mouse on the canvas, an upload, a quiz answer and
the story's six steps, each leaving a screenshot in ``artifacts/screenshots/``. The server, the browser and the
skip-or-fail rule for a missing Chromium (fail under ``$CI``) come from ``test_browser.py``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_browser import SHOTS, _no_exception, _settle, page, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DATAFRAME, CHART = '[data-testid="stDataFrame"]', '[data-testid="stPlotlyChart"]'


def _visit(tab, server: str, path: str) -> None:
    tab.goto(f"{server}/{path}")
    tab.wait_for_selector("h1")
    _settle(tab)
    _no_exception(tab)


def _stroke(tab, points: list[tuple[float, float]]) -> None:
    """Draw one stroke through ``points`` (fractions of the canvas) with the mouse. The canvas lives in the
    component's shadow root (components v2), which Playwright's CSS locators pierce; Fabric listens on the upper one."""
    canvas = tab.locator("canvas.upper-canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    tab.mouse.move(*at[0])
    tab.mouse.down()
    for x, y in at[1:]:
        tab.mouse.move(x, y, steps=12)
    tab.mouse.up()


def test_drawing_a_digit_makes_every_model_predict(page, server):
    _visit(page, server, "draw")
    assert "canvas is empty" in page.locator('[data-testid="stAlert"]').first.inner_text()
    assert page.locator(DATAFRAME).count() == 0
    _stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.55, 0.5), (0.42, 0.85)])  # a 7
    page.wait_for_selector(DATAFRAME)
    _settle(page)
    _no_exception(page)
    assert page.get_by_text("What the models see (28×28)").count() == 1
    assert page.locator(CHART).count() == 2, "probabilities, then saliency / FGSM / TGSM per model"
    assert "canvas is empty" not in " ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())
    page.screenshot(path=str(SHOTS / "draw.png"), full_page=True)


def test_uploading_a_picture_makes_every_model_predict(page, server, tmp_path):
    _visit(page, server, "draw")
    page.locator('[data-testid="stButtonGroup"] button', has_text="Upload").click()
    _settle(page)
    picture = np.full((300, 200, 3), 240, np.uint8)
    picture[40:260, 120:140] = (30, 30, 90)  # a dark-blue '1', off-centre, on light paper
    path = tmp_path / "one.png"
    Image.fromarray(picture).save(path)
    page.locator('input[type="file"]').set_input_files(str(path))
    page.wait_for_selector(DATAFRAME)
    _settle(page)
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "draw_upload.png"), full_page=True)
    buf = io.BytesIO(b"this is not an image")
    page.locator('input[type="file"]').set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.get_by_text("not a readable image").wait_for()
    _settle(page)
    _no_exception(page)


def test_quiz_answer_updates_the_score(page, server):
    _visit(page, server, "quiz")
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == "0 / 0"
    page.screenshot(path=str(SHOTS / "quiz.png"), full_page=True)
    page.locator('[data-testid="stMain"] [data-testid="stButton"] button').first.click()
    page.get_by_text("It was").wait_for()
    _settle(page)
    _no_exception(page)
    assert page.locator('[data-testid="stMetricValue"]').first.inner_text().endswith("/ 1")
    page.screenshot(path=str(SHOTS / "quiz_answered.png"), full_page=True)
    page.get_by_role("button", name="Next question").click()
    page.get_by_text("It was").wait_for(state="detached")
    _settle(page)
    _no_exception(page)


def test_story_walks_through_its_steps(page, server):
    _visit(page, server, "story")
    for step in range(1, 7):
        _no_exception(page)
        assert page.locator(CHART).count() + page.locator('[data-testid="stMetric"]').count() >= 1, step
        page.screenshot(path=str(SHOTS / f"story_{step}.png"), full_page=True)
        if step < 6:
            page.get_by_role("button", name="Next", exact=True).click()
            _settle(page)
    assert page.get_by_role("button", name="Next", exact=True).is_disabled()
