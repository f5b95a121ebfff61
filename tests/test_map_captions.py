"""Every page that draws a signed map (saliency, input gradient, perturbation: a heatmap on the red-blue scale
centred at 0) says in a caption what red and blue mean (issue 21). Maps are found in the charts' Plotly specs, so a
new map on any page is checked without listing it here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The Draw page needs a drawn or uploaded digit before it shows a map (a canvas AppTest cannot draw on); the Sweeps
# page draws curves only. Every other page is opened as a student first sees it.
PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py") if p.stem not in ("draw", "sweeps", "train"))


def signed_maps(app) -> int:
    """How many of the page's charts hold a heatmap centred at 0 (``zmin < 0``: the red-blue signed scale)."""
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return sum(any(trace.get("type") == "heatmap" and (trace.get("zmin") or 0) < 0 for trace in chart["data"])
               for chart in charts)


def explains_red_and_blue(app) -> bool:
    return any("red" in c.value.lower() and "blue" in c.value.lower() for c in app.caption)


def _open(app, page: str):
    app.run()
    app.switch_page(f"pages/{page}").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.mark.parametrize("page", PAGES)
def test_a_page_with_a_signed_map_says_what_red_and_blue_mean(app, page):
    _open(app, page)
    maps, explained = signed_maps(app), explains_red_and_blue(app)
    assert explained or not maps, f"{page}: {maps} map(s), no caption says what red and blue mean"


def test_the_check_sees_the_maps_it_is_about(app):
    """The pages that show a map at first sight do show one to the check (else it would pass by seeing nothing)."""
    for page in ("home.py", "lambda_explorer.py", "attack_lab.py", "saliency_compare.py", "quiz.py", "story.py",
                 "transfer.py"):
        assert signed_maps(_open(app, page)), page


def test_the_storys_attack_steps_explain_their_maps(app):
    _open(app, "story.py")
    for step in (1, 3):  # FGSM on the plain model, then on the regularized one: the attack row, perturbation first
        app.session_state["story.step"] = step
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        maps, explained = signed_maps(app), explains_red_and_blue(app)
        assert maps and explained, f"step {step}: {maps} map(s), red and blue explained: {explained}"
