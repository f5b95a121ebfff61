"""The λ explorer's card metrics: arrows follow the sign of the change, every metric says what it measures."""

from __future__ import annotations

import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto

from gradreg.ui.cards import CARD_HELP, CARD_METRICS, card_delta, card_help

ARROWS = {MetricProto.MetricDirection.UP: "up", MetricProto.MetricDirection.DOWN: "down",
          MetricProto.MetricDirection.NONE: "off"}


@pytest.mark.parametrize(("key", "value", "base", "text", "arrow"), [
    ("grad_norm", 0.014, 0.1, "×0.14 vs plain", "down"),  # the case: a 7× decrease read "↑ ×0.14"
    ("grad_norm", 0.3, 0.1, "×3 vs plain", "up"),
    ("grad_norm", 0.1, 0.1, "×1 vs plain", "off"),
    ("grad_norm", 0.0999, 0.1, "×1 vs plain", "off"),  # the arrow follows the ratio as shown
    ("fgsm", 0.45, 0.12, "+33.0 pts vs plain", "up"),
    ("clean", 0.97, 0.99, "-2.0 pts vs plain", "down"),
    ("max_prob", 0.80, 0.99, "-19.0 pts vs plain", "down"),
    ("pgd", 0.5, 0.5, "±0.0 pts vs plain", "off"),
    ("pgd", 0.50001, 0.5, "±0.0 pts vs plain", "off"),  # rounds to zero: no arrow, no "-0.0"
    ("pgd", 0.49999, 0.5, "±0.0 pts vs plain", "off"),
])
def test_the_arrow_follows_the_sign_of_the_change(key, value, base, text, arrow):
    assert card_delta(key, value, base) == (text, arrow)


def test_no_reference_no_delta():
    assert card_delta("fgsm", 0.4, None) == (None, "off")
    assert card_delta("grad_norm", 0.4, 0.0) == (None, "off")


@pytest.mark.parametrize("key", [key for key, _ in CARD_METRICS])
def test_every_metric_says_what_on_which_images_and_which_way_is_better(key):
    text = card_help(key, n=256, eps=0.1)
    assert "first 256 test images" in text
    assert "better" in text
    assert "{" not in text, "every placeholder is filled"
    assert set(CARD_HELP) == {k for k, _ in CARD_METRICS}


def test_lambda_explorer_arrows_and_help(app):
    app.run()
    app.switch_page("pages/lambda_explorer.py").run()
    assert not app.exception
    for lam in (0.1, 1.0, 10.0, 110.0):
        app.select_slider(key="lambda.lam.grad_y").set_value(lam).run()
        assert not app.exception
        for metric in app.metric:
            assert metric.help and "test images" in metric.help, metric.label
            assert ARROWS[metric.proto.direction] == _sign_arrow(metric.delta), (lam, metric.label, metric.delta)
        norm = next(m for m in app.metric if m.label == "Mean ‖∇ₓ CE‖₂")
        explained = any("Why can ‖∇ₓ CE‖₂ rise" in c.value for c in app.caption)
        assert explained == (ARROWS[norm.proto.direction] == "up"), "the note appears exactly when the norm rises"


def _sign_arrow(delta: str) -> str:
    """The arrow a delta text calls for: its sign, or its ratio against 1."""
    if delta.startswith("×"):
        ratio = float(delta[1:].split()[0])
        return "up" if ratio > 1 else "down" if ratio < 1 else "off"
    return "up" if delta.startswith("+") else "down" if delta.startswith("-") else "off"
