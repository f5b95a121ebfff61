"""Saliency-quality metrics: numbers per example (tensors ``(N,)``) and per model (``saliency_report``).

Stand-ins for the interpretability claims of Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404,
PAPER.md §7): smoothness (total variation), stroke mass, alignment (Etmann et al. 2019, arXiv 1905.04172),
sparseness (Gini; Hurley & Rickard 2009), deletion / insertion (Petsiuk et al. 2018, arXiv 1806.07421) and the
model-randomization sanity check (Adebayo et al. 2018, arXiv 1810.03292; in ``gradreg.explain.randomization``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_fit, check_maps
from gradreg.explain.randomization import randomization_check
from gradreg.explain.saliency import Target, resolve_target, saliency

Order = Literal["abs", "signed"]  # rank pixels by |attribution| or by signed attribution
STROKE_THRESHOLD = 0.5  # MNIST strokes are near 1 and background is 0; 0.5 splits them cleanly


def _flat(a: torch.Tensor) -> torch.Tensor:
    return a.detach().flatten(1).double()  # (N, D); float64 keeps sums over pixels exact enough for tests


def gradient_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇ₓ CE(y, f(x))‖₂ per example, ``(N,)`` — the quantity Grad Reg (y) penalizes (PAPER.md §1)."""
    return saliency(model, x, "true", "loss_gradient", y=y).flatten(1).norm(dim=1)


def total_variation(a: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of the signed map divided by its L1 mass, ``(N,)`` in [0, 4].

    Σ |a_i − a_j| over horizontally and vertically adjacent pixels, over Σ |a_i|: 0 for a constant map, about 2.8
    for i.i.d. Gaussian noise, 4 for an alternating checkerboard. Scale-invariant; a zero map gives 0.
    """
    a = check_maps(a).detach().double()  # (N, C, H, W)
    tv = (a[..., 1:, :] - a[..., :-1, :]).abs().flatten(1).sum(1) + (a[..., 1:] - a[..., :-1]).abs().flatten(1).sum(1)
    return (tv / a.abs().flatten(1).sum(1).clamp_min(1e-300)).float()


def stroke_mass(a: torch.Tensor, x: torch.Tensor, *, threshold: float = STROKE_THRESHOLD) -> torch.Tensor:
    """Share of |attribution| on the digit's pixels (``x > threshold``), ``(N,)`` in [0, 1]; 0 for a zero map.

    Compare with ``stroke_fraction(x)``, what a uniform map would score."""
    mass = _flat(a).abs()
    return ((mass * (_flat(x) > threshold)).sum(1) / mass.sum(1).clamp_min(1e-300)).float()


def stroke_fraction(x: torch.Tensor, *, threshold: float = STROKE_THRESHOLD) -> torch.Tensor:
    """Fraction of pixels above ``threshold`` per image, ``(N,)`` in [0, 1] (the chance level of stroke mass)."""
    return (_flat(x) > threshold).double().mean(1).float()


def alignment(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """|⟨x, a⟩| / (‖x‖ ‖a‖) per example, ``(N,)`` in [0, 1] (Etmann et al. 2019); 0 when either is zero."""
    fa, fx = _flat(a), _flat(x)
    return ((fa * fx).sum(1).abs() / (fa.norm(dim=1) * fx.norm(dim=1)).clamp_min(1e-300)).float()


def gini(a: torch.Tensor) -> torch.Tensor:
    """Gini sparseness of |a| (Hurley & Rickard 2009), ``(N,)`` in [0, 1 − 1/D]: 0 uniform, → 1 one pixel."""
    c = _flat(check_maps(a)).abs().sort(dim=1).values  # ascending
    d = c.shape[1]
    k = torch.arange(1, d + 1, dtype=c.dtype, device=c.device)
    share = c / c.sum(1, keepdim=True).clamp_min(1e-300)
    return (1 - 2 * (share * (d - k + 0.5) / d).sum(1)).float()


def _ordered_pixels(a: torch.Tensor, order: Order) -> torch.Tensor:
    if order not in ("abs", "signed"):
        raise ValueError(f"unknown order {order!r}; valid: abs, signed")
    score = _flat(a).abs() if order == "abs" else _flat(a)
    return score.argsort(dim=1, descending=True, stable=True)  # (N, D), most important first


@torch.no_grad()
def _perturbation_curve(model: nn.Module, start: torch.Tensor, end: torch.Tensor, a: torch.Tensor,
                        target: torch.Tensor, steps: int, order: Order) -> torch.Tensor:
    """p_target along a path that copies pixels of ``end`` into ``start`` in attribution order: ``(N, steps + 1)``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    ranked = _ordered_pixels(a, order)
    n, d = ranked.shape
    probs = []
    with eval_mode(model):
        for i in range(steps + 1):
            k = round(i * d / steps)
            mask = torch.zeros(n, d, dtype=torch.bool, device=start.device).scatter_(1, ranked[:, :k], True)
            image = torch.where(mask.view_as(start), end, start)
            probs.append(F.softmax(model(image), 1).gather(1, target[:, None])[:, 0])
    return torch.stack(probs, 1)


def deletion_curve(model: nn.Module, x: torch.Tensor, a: torch.Tensor, target: Target, *,
                   y: torch.Tensor | None = None, steps: int = 28, baseline: float = 0.0,
                   order: Order = "abs") -> torch.Tensor:
    """Probability of the target class as the most-attributed pixels are set to ``baseline`` (Petsiuk et al. 2018).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; a: their maps, same shape; target: as in ``saliency``.
        steps: the curve has ``steps + 1`` points at deleted fractions 0, 1/steps, …, 1 of the pixels.
        order: rank pixels by ``|a|`` ("abs") or by signed value ("signed").

    Returns:
        ``(N, steps + 1)`` probabilities in [0, 1]; a faithful map falls fast (low ``curve_auc``).
    """
    _check_curve_args(model, x, a, steps)
    t = resolve_target(model, x, target, y)
    return _perturbation_curve(model, x, torch.full_like(x, baseline), a, t, steps, order)


def insertion_curve(model: nn.Module, x: torch.Tensor, a: torch.Tensor, target: Target, *,
                    y: torch.Tensor | None = None, steps: int = 28, baseline: float = 0.0,
                    order: Order = "abs") -> torch.Tensor:
    """Probability of the target class as the most-attributed pixels of ``x`` are pasted into a ``baseline``
    image (Petsiuk et al. 2018); same arguments as ``deletion_curve``. ``(N, steps + 1)``; higher AUC is better."""
    _check_curve_args(model, x, a, steps)
    t = resolve_target(model, x, target, y)
    return _perturbation_curve(model, torch.full_like(x, baseline), x, a, t, steps, order)


def _check_curve_args(model: nn.Module, x: torch.Tensor, a: torch.Tensor, steps: int) -> None:
    check_fit(model, x)
    if check_maps(a).shape != x.shape:
        raise ValueError(f"maps must have the images' shape {tuple(x.shape)}, got {tuple(a.shape)}")
    check_count("steps", steps)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under curves sampled at evenly spaced fractions of [0, 1]: ``(N, S)`` → ``(N,)``."""
    if not isinstance(curve, torch.Tensor) or curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError(f"curves must be a tensor (N, S) with S >= 2 points, got {getattr(curve, 'shape', curve)!r}")
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def metric_records(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "input_gradient",
                   curve_steps: int = 28, **params) -> list[dict]:
    """Every per-example metric of the maps of ``method`` for the true class, as tidy records (one per image).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; curve_steps: deletion/insertion resolution;
        params: the method's knobs (see ``saliency``).

    Returns:
        ``[{"index", "label", "gradient_norm", "total_variation", "stroke_mass", "stroke_fraction", "alignment",
        "gini", "deletion_auc", "insertion_auc"}, …]`` with plain floats.
    """
    a = saliency(model, x, "true", method, y=y, **params)
    columns = {
        "gradient_norm": gradient_norm(model, x, y),
        "total_variation": total_variation(a),
        "stroke_mass": stroke_mass(a, x),
        "stroke_fraction": stroke_fraction(x),
        "alignment": alignment(a, x),
        "gini": gini(a),
        "deletion_auc": curve_auc(deletion_curve(model, x, a, "true", y=y, steps=curve_steps)),
        "insertion_auc": curve_auc(insertion_curve(model, x, a, "true", y=y, steps=curve_steps)),
    }
    return [{"index": i, "label": int(y[i]), **{k: float(v[i]) for k, v in columns.items()}} for i in range(len(x))]


def saliency_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "input_gradient",
                    curve_steps: int = 28, randomization: bool = True, **params) -> dict[str, float]:
    """Per-model summary: the mean of each ``metric_records`` column, plus (if ``randomization``) the Spearman
    similarity of |maps| between the trained model and its fully re-initialized copy (lower = passes the check).

    Returns:
        ``{"method", "n", "gradient_norm", …, "insertion_auc", "randomization_similarity"}`` (floats; ``method`` str).
    """
    records = metric_records(model, x, y, method=method, curve_steps=curve_steps, **params)
    keys = [k for k in records[0] if k not in ("index", "label")]
    report: dict = {"method": method, "n": len(records)}
    report.update({k: sum(r[k] for r in records) / len(records) for k in keys})
    if randomization:
        report["randomization_similarity"] = randomization_check(model, x, y, method=method, **params)[-1]["similarity"]
    return report
