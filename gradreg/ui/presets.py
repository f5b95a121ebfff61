"""Lesson presets: named views of a page, each a page and the URL parameters that set it up (spelled as
``gradreg.ui.urlstate`` reads them). Home links them; ``gradreg.ui.precompute`` records each with the zoo, so a
preset opens on precomputed results."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A named lesson: a page (its url path) and the URL parameters that set up its view."""

    title: str
    page: str
    params: dict[str, str | list[str]]
    lesson: str


PRESETS = (
    Preset("Noisy vs clean gradients", "saliency_compare",
           {"saliency.models": ["plain", "grad_y_110"], "saliency.methods": ["input_gradient", "smoothgrad"]},
           "The plain model's input gradient looks like noise; the regularized one follows the strokes."),
    Preset("FGSM breaks the plain model", "attack_lab",
           {"attack.models": ["plain", "grad_y_110"], "attack.method": "fgsm", "attack.eps.fgsm.linf": "0.15",
            "attack.class": "2", "attack.example": "0"},  # a test digit FGSM turns on the shipped plain model only
           "One signed-gradient step of size ε = 0.15 fools the plain model more often than the regularized one: "
           "this digit, then the curves below."),
    Preset("The λ trade-off", "lambda_explorer",
           {"lambda.regularizer": "grad_y", "lambda.lam.grad_y": "110", "lambda.eps": "0.2"},
           "Move λ from 1 to 1000: λ_eff = 1 already buys most of the robustness to FGSM, robustness to PGD keeps "
           "growing up to a few hundred, and clean accuracy slips a little at every step. The authors' λ_eff = 110 "
           "is marked."),
    Preset("Distillation masks gradients", "attack_lab",
           {"attack.models": ["plain", "distill"], "attack.method": "square", "attack.eps.square.linf": "0.2"},
           "A distilled model resists FGSM only because its gradients vanish; the gradient-free Square attack "
           "still finds adversarial examples."),
    Preset("The robustness illusion", "attack_lab",
           {"attack.models": ["fgsm_at", "grad_y_110", "pgd_at"], "attack.method": "ensemble",
            "attack.eps.ensemble.linf": "0.2", "curves.method": "fgsm"},
           "FGSM adversarial training looks robust to FGSM at ε = 0.2 and falls to the strong ensemble: compare it "
           "with Grad Reg (y) and PGD adversarial training in the table under the curves."),
    Preset("Adversarial examples transfer", "transfer",
           {"transfer.models": ["plain", "grad_y_110", "fgsm_at"], "transfer.method": "fgsm", "transfer.eps": "0.2",
            "transfer.source": "grad_y_110", "transfer.evaluated": "plain"},
           "The paper: examples crafted on a regularized model fool other models more often than the reverse. "
           "Check it in the matrix."),
)


def preset(title: str) -> Preset:
    """The preset called ``title``; ``ValueError`` listing the valid titles otherwise."""
    found = next((p for p in PRESETS if p.title == title), None)
    if found is None:
        raise ValueError(f"unknown preset {title!r}; valid: {', '.join(p.title for p in PRESETS)}")
    return found
