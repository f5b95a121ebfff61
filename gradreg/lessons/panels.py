"""What the dashboard's pages show about models on images, as plain data: the test-image gallery and thumbnails, attack
panels, saliency maps and metrics, the randomization check. No Streamlit here: ``gradreg.ui`` caches these by ids
and numbers, and the tests call them directly.

The views follow Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404), PAPER.md §5–7.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import attack, get_attack, sized, target_classes
from gradreg.evaluation.accuracy import predict_logits
from gradreg.explain.metrics import saliency_report
from gradreg.explain.randomization import randomization_check
from gradreg.explain.saliency import saliency

def thumbnail_strip(x: np.ndarray, *, scale: int = 3, gap: int = 2) -> np.ndarray:
    """Images ``(N, C, H, W)`` in [0, 1] side by side as one greyscale ``uint8`` array, upscaled ``scale``×
    (nearest neighbour) with ``gap``-pixel light separators."""
    planes = [np.pad(np.asarray(img).mean(0), ((0, 0), (0, gap)), constant_values=0.75) for img in x]
    strip = np.concatenate(planes, axis=1)
    return (np.kron(strip, np.ones((scale, scale))) * 255).round().astype(np.uint8)


def gallery(y: torch.Tensor | np.ndarray, *, per_class: int = 8) -> dict[int, list[int]]:
    """Class → the indices of its first ``per_class`` examples in ``y`` ``(N,)``."""
    labels = np.asarray(y)
    return {int(k): np.flatnonzero(labels == k)[:per_class].tolist() for k in np.unique(labels)}


def saliency_maps(model: nn.Module, x: torch.Tensor, *, method: str = "input_gradient", target: str | int = "pred",
                  y: torch.Tensor | None = None, **params) -> np.ndarray:
    """Signed attribution maps of ``method`` for ``x`` ``(N, C, H, W)``: float32 numpy ``(N, C, H, W)``."""
    return saliency(model, x, target, method, y=y, **params).numpy().astype(np.float32)


def _resolve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: str | int | None,
             seed: int) -> torch.Tensor:
    """Target classes ``(N,)``: a class for all, or one of ``TARGETS`` (default "next", the paper's)."""
    target = "next" if target is None else target
    if isinstance(target, int):
        return torch.full_like(y, target)
    return target_classes(model, x, y, target, generator=torch.Generator().manual_seed(seed))


def attack_panel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str, size: float,
                 target: str | int | None = None, seed: int = 0, saliency_method: str = "input_gradient",
                 **params) -> dict:
    """One image attacked on one model, with what the attack lab shows.

    Args:
        x: one image ``(1, C, H, W)`` in [0, 1]; y: its label ``(1,)``; method: a key of ``ATTACKS``; size: the
            value of its size knob (``ATTACKS[method].size``: ε, iterated TGSM's step size or JSMA's θ), pixel
            units; target: targeted attacks only, a class or one of ``TARGETS``; params: its other knobs.
    Returns:
        numpy ``image``, ``adversarial``, ``perturbation`` ``(C, H, W)``; ``saliency_clean`` / ``saliency_adv``
        (``saliency_method`` for the predicted class); ``probs_clean`` / ``probs_adv`` ``(K,)``; ints ``label``,
        ``pred_clean``, ``pred_adv``, ``target`` (−1 if untargeted); floats ``linf``, ``l2``, ``l0`` (pixels changed).
    """
    spec = get_attack(method)
    t = _resolve(model, x, y, target, seed) if spec.targeted else None  # resolved here to name the class
    x_adv = attack(model, x, y, method, **sized(method, size), target=t, seed=seed, **params)
    probs = F.softmax(predict_logits(model, torch.cat([x, x_adv])), dim=1).numpy()
    delta = (x_adv - x)[0]
    return {"image": x[0].numpy(), "adversarial": x_adv[0].numpy(), "perturbation": delta.numpy(),
            "saliency_clean": saliency_maps(model, x, method=saliency_method)[0],
            "saliency_adv": saliency_maps(model, x_adv, method=saliency_method)[0],
            "probs_clean": probs[0], "probs_adv": probs[1], "label": int(y[0]), "pred_clean": int(probs[0].argmax()),
            "pred_adv": int(probs[1].argmax()), "target": int(t[0]) if t is not None else -1,
            "linf": float(delta.abs().max()), "l2": float(delta.norm()), "l0": float((delta != 0).sum())}


def size_range(method: str, norm: str = "linf") -> tuple[str, float, float, float]:
    """The slider of ``method``'s size knob (``ATTACKS[method].size``): (title, largest sensible value, default,
    step), pixel units of [0, 1]."""
    size = get_attack(method).size
    if size == "step_size":
        return "step size per step (no ε-ball)", 0.3, 0.1, 0.01
    if size == "theta":
        return "θ, per-pixel increase", 1.0, 1.0, 0.05
    return ("ε, L2 radius", 5.0, 1.0, 0.05) if norm == "l2" else ("ε, L∞ radius", 0.5, 0.1, 0.01)


def attack_summary(name: str, panel: Mapping) -> str:
    """One markdown line: the model, its prediction before → after, and the perturbation's size."""
    fooled, targeted = panel["pred_adv"] != panel["label"], panel["target"] >= 0
    verdict = ("reached the target" if targeted and panel["pred_adv"] == panel["target"]
               else "fooled" if fooled else "still correct")
    target = f" · target {panel['target']}" if targeted else ""
    return (f"{':red[✗]' if fooled else ':green[✓]'} **{name}** · label {panel['label']}{target} · predicted "
            f"{panel['pred_clean']} ({panel['probs_clean'].max():.0%}) → **{panel['pred_adv']}** "
            f"({panel['probs_adv'].max():.0%}), {verdict} · ‖δ‖∞ = {panel['linf']:.3f}, ‖δ‖₂ = {panel['l2']:.2f}, "
            f"{panel['l0']:.0f} pixels changed")


def metrics_row(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str) -> dict[str, float]:
    """The saliency metrics of ``method`` on ``x`` (means over the images), with the randomization similarity."""
    report = saliency_report(model, x, y, method=method, curve_steps=14)
    return {k: v for k, v in report.items() if k not in ("method", "n")}


def randomization_records(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str) -> list[dict]:
    """The cascading model-randomization check (Adebayo et al. 2018) of ``method``: records per re-initialized layer."""
    return randomization_check(model, x, "true", y=y, method=method)


def default_digit(plain: nn.Module, regular: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                  method: str = "fgsm") -> int | None:
    """The first image of ``x`` that shows the lesson: ``plain`` classifies it correctly, loses it under ``method``
    at ``eps``, and ``regular`` keeps it; None when no image does.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; eps: L∞ radius in pixel units.
    Returns:
        An index into ``x``.
    """
    lost = (predict_logits(plain, x).argmax(1) == y) & (predict_logits(plain, attack(plain, x, y, method, eps=eps,
                                                                                      seed=0)).argmax(1) != y)
    kept = predict_logits(regular, attack(regular, x, y, method, eps=eps, seed=0)).argmax(1) == y
    hits = torch.nonzero(lost & kept).flatten()
    return int(hits[0]) if len(hits) else None


BLANK_RATIO = 0.05  # a map whose peak is under 5 % of the shared colour scale's reads as empty


def blank_note(panel: Mapping, name: str) -> str:
    """Why ``panel``'s clean saliency map (``attack_panel``) looks blank next to its adversarial one under their
    shared colour scale, or "" when it does not."""
    clean, adv = np.abs(panel["saliency_clean"]).max(), np.abs(panel["saliency_adv"]).max()
    if clean >= BLANK_RATIO * max(clean, adv) and clean > 0:
        return ""
    confidence = float(np.max(panel["probs_clean"]))
    ratio = f"{clean / adv:.1%} of" if adv > 0 else "as small as"
    return (f"{name}'s clean saliency map looks blank: its largest value is {ratio} the adversarial map's, on the "
            f"shared colour scale. It is {confidence:.2%} sure of its answer, and a near-certain prediction has a "
            "near-zero gradient (softmax saturates); hover over the tile for the raw values.")
