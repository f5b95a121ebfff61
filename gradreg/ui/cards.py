"""The zoo's card numbers as a row of ``st.metric``: each with its difference to the plain model, an arrow that
follows the sign of that difference, and a help text saying what it measures, on which images, and which direction
is better (Ross & Doshi-Velez 2018, https://arxiv.org/abs/1711.09404, PAPER.md §5–6).
"""

from __future__ import annotations

from typing import Literal

import streamlit as st

CARD_METRICS = (("clean", "Clean accuracy"), ("fgsm", "FGSM white-box"), ("pgd", "PGD white-box"),
                ("transfer_fgsm", "FGSM from plain"), ("grad_norm", "Mean ‖∇ₓ CE‖₂"), ("max_prob", "Confidence"))
# What each number measures and which way is better; "{images}" and "{eps}" are filled in when shown.
CARD_HELP = {
    "clean": "Accuracy on {images}, unattacked. Higher is better.",
    "fgsm": "Accuracy on {images} after FGSM at ε = {eps} (L∞) crafted on this model itself (white-box). Higher is "
            "better: more of them survive the attack.",
    "pgd": "Accuracy on {images} after iterated PGD at ε = {eps} (L∞) crafted on this model itself (white-box). Higher "
           "is better. PGD is the stronger attack: a model far better under FGSM than under PGD only looks robust.",
    "transfer_fgsm": "Accuracy on {images} after FGSM at ε = {eps} (L∞) crafted on the plain model, then shown to "
                     "this one (a black-box transfer attack). Higher is better.",
    "grad_norm": "Mean over {images} of ‖∇ₓ CE‖₂, the length of the loss's input gradient: how fast the loss "
                 "rises when the pixels move. Lower is better in the penalty's sense (it shrinks this norm on the "
                 "training images), but it is not a robustness score by itself: a saturated, over-confident model "
                 "also has a tiny one; see the note under the cards when it rises.",
    "max_prob": "Mean probability of the predicted class on {images}. Neither direction is better by itself: the "
                "paper's regularized models are less over-confident (lower) and still as accurate.",
}
GRAD_NORM_RISES = (
    "**Why can ‖∇ₓ CE‖₂ rise under the penalty?** ∇ₓ CE = (softmax − one-hot)ᵀ · ∂logits/∂x. A plain model is "
    "over-confident: on the images it classifies correctly the softmax is ≈ one-hot, so the first factor is ≈ 0 and "
    "the gradient is tiny even though its logits are steep. A small λ makes the model less confident (that factor "
    "grows) before it has flattened its logits much, so the product can rise; at larger λ the flatter logits win and "
    "the norm falls below the plain model's.")
Arrow = Literal["up", "down", "off"]


def _arrow(change: float) -> Arrow:
    return "up" if change > 0 else "down" if change < 0 else "off"


def card_delta(key: str, value: float, base: float | None) -> tuple[str | None, Arrow]:
    """The difference of card number ``key`` to the plain model's, as shown: (text or None, arrow).

    The arrow follows the sign of the change as displayed (rounded): up for an increase, down for a decrease, off
    when the shown change is zero. Accuracies and confidence differ in percentage points; the gradient norm as a
    ratio (×0.14 is a decrease: arrow down).
    """
    if base is None:
        return None, "off"
    if key == "grad_norm":
        if base <= 0:
            return None, "off"
        ratio = float(f"{value / base:.2g}")
        return f"×{ratio:g} vs plain", _arrow(ratio - 1)
    points = round((value - base) * 100, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return (f"{points:+.1f} pts vs plain" if points else "±0.0 pts vs plain"), _arrow(points)


def card_help(key: str, *, n: int | None, eps: float | None) -> str:
    """The help text of card number ``key``: what it measures, on which images, which direction is better."""
    images = f"the zoo's first {n} test images" if n else "the zoo's evaluation images (the first test images)"
    return CARD_HELP[key].format(images=images, eps=f"{eps:g}" if eps is not None else "the chosen ε")


def card_metrics(values: dict, reference: dict | None, *, n: int | None = None) -> None:
    """One ``st.metric`` per card number (``values`` from ``zoo_views.card_values``), with the difference to the
    plain model's ``reference`` numbers; ``n``: how many test images the cards were computed on."""
    eps = values.get("eps")
    for column, (key, title) in zip(st.columns(len(CARD_METRICS)), CARD_METRICS):
        value, base = values.get(key), (reference or {}).get(key)
        help_text = card_help(key, n=n, eps=eps)
        if value is None:
            column.metric(title, "n/a", help=help_text)
            continue
        delta, arrow = card_delta(key, value, base)
        # Colour only where a direction is better: accuracies (green up); the norm and confidence are diagnostics.
        color = "normal" if key in ("clean", "fgsm", "pgd", "transfer_fgsm") else "off"
        shown = f"{value:.3g}" if key == "grad_norm" else f"{value:.1%}"
        column.metric(title, shown, delta, delta_color=color, delta_arrow=arrow, help=help_text)
    norm, plain_norm = values.get("grad_norm"), (reference or {}).get("grad_norm")
    if norm is not None and plain_norm and card_delta("grad_norm", norm, plain_norm)[1] == "up":
        st.caption(GRAD_NORM_RISES)
