"""Saliency-quality metrics: numbers per example (tensors ``(N,)``) and per model (``saliency_report``).

Stand-ins for the interpretability claims of Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404,
PAPER.md §7): smoothness (total variation), stroke mass, alignment (Etmann et al. 2019, arXiv 1905.04172),
sparseness (Gini; Hurley & Rickard 2009), deletion / insertion (Petsiuk et al. 2018, arXiv 1806.07421) and the
model-randomization sanity check (Adebayo et al. 2018, arXiv 1810.03292).
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import eval_mode
from gradreg.saliency import Target, resolve_target, saliency
from gradreg.validation import check_count, check_fit, check_maps

Similarity = Literal["spearman", "ssim"]
SIMILARITIES = ("spearman", "ssim")
Order = Literal["abs", "signed"]  # rank pixels by |attribution| or by signed attribution
STROKE_THRESHOLD = 0.5  # MNIST strokes are near 1 and background is 0; 0.5 splits them cleanly
SSIM_WINDOW, SSIM_SIGMA = 7, 1.5  # Gaussian window (Wang et al. 2004 use 11/1.5; 7 suits 28×28 maps)


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


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank) along dim 1 of ``(N, D)``."""
    sorted_v, order = v.sort(dim=1, stable=True)
    new_group = torch.ones_like(sorted_v, dtype=torch.bool)
    new_group[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    group = new_group.long().cumsum(1) - 1  # (N, D) tie-group id of each sorted position
    position = torch.arange(v.shape[1], dtype=v.dtype, device=v.device).expand_as(v)
    sums = torch.zeros_like(v).scatter_add_(1, group, position)
    counts = torch.zeros_like(v).scatter_add_(1, group, torch.ones_like(v))
    return torch.empty_like(v).scatter_(1, order, (sums / counts).gather(1, group))


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))  # nan when a map is constant


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of maps scaled to [−1, 1] by their own max |·|: dynamic range L = 2."""
    n, c, h, w = a.shape
    scale = lambda m: m / m.abs().flatten(1).amax(1).clamp_min(1e-300).view(n, 1, 1, 1)  # noqa: E731
    a, b = scale(a.double()).reshape(n * c, 1, h, w), scale(b.double()).reshape(n * c, 1, h, w)
    size = min(SSIM_WINDOW, h, w)
    g = torch.exp(-((torch.arange(size, dtype=a.dtype) - (size - 1) / 2) ** 2) / (2 * SSIM_SIGMA ** 2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2).view(1, 1, size, size).to(a.device)
    mu_a, mu_b = F.conv2d(a, window), F.conv2d(b, window)
    var_a = F.conv2d(a * a, window) - mu_a ** 2
    var_b = F.conv2d(b * b, window) - mu_b ** 2
    cov = F.conv2d(a * b, window) - mu_a * mu_b
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    ssim = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim.view(n, -1).mean(1)


def map_similarity(a: torch.Tensor, b: torch.Tensor, metric: Similarity = "spearman") -> torch.Tensor:
    """Similarity of two batches of maps per example, ``(N,)``; symmetric and invariant to positive scaling.

    Args:
        a, b: maps ``(N, C, H, W)``; metric: "spearman" (rank correlation over pixels with averaged ties, in
            [−1, 1], nan if a map is constant) or "ssim" (structural similarity of the max-normalized maps,
            in [−1, 1]; the similarity measure of Adebayo et al. 2018).
    """
    if metric not in SIMILARITIES:
        raise ValueError(f"unknown similarity metric {metric!r}; valid: {', '.join(SIMILARITIES)}")
    check_maps(a), check_maps(b, "b")
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"maps must share one (N, C, H, W) shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if metric == "ssim":
        return _ssim(a.detach(), b.detach()).float()
    return _pearson(_ranks(_flat(a)), _ranks(_flat(b))).float()


@torch.no_grad()
def _reinitialize(module: nn.Module, generator: torch.Generator) -> None:
    """Seeded re-initialization: PyTorch's default scheme for weights/biases; BatchNorm back to identity."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.reset_parameters()
        return
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    fan_in = weight[0].numel() if weight is not None and weight.dim() > 1 else 1
    for name, p in params.items():
        if p.dim() > 1:
            nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=generator)
        else:
            nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)


def randomization_check(model: nn.Module, x: torch.Tensor, target: Target, *, method: str = "input_gradient",
                        y: torch.Tensor | None = None, metric: Similarity = "spearman", absolute: bool = True,
                        seed: int = 0, **params) -> list[dict]:
    """Cascading model-randomization sanity check (Adebayo et al. 2018), top layer down, on a private copy.

    Stage k re-initializes the k topmost layers that own parameters (seeded by ``seed``) and compares the maps
    with the trained model's. A method that explains the model should drop far below 1; a method whose maps
    stay similar is mostly showing the input.

    Args:
        x, target, y, method, params: as in ``saliency`` (the target is fixed from the trained model);
        metric: see ``map_similarity``; absolute: compare |maps| (Adebayo et al.'s main variant).

    Returns:
        Tidy records ``{"stage", "layer", "similarity", "similarity_std"}``, stage 0 = trained model (1.0).
    """
    t = resolve_target(model, x, target, y)
    post = torch.abs if absolute else (lambda m: m)
    reference = post(saliency(model, x, t, method, **params))
    randomized = copy.deepcopy(model)
    layers = [(name, m) for name, m in randomized.named_modules() if any(True for _ in m.parameters(recurse=False))]
    generator = torch.Generator().manual_seed(seed)
    records = [{"stage": 0, "layer": "(trained)", "similarity": 1.0, "similarity_std": 0.0}]
    for stage, (name, layer) in enumerate(reversed(layers), start=1):
        _reinitialize(layer, generator)
        sims = map_similarity(reference, post(saliency(randomized, x, t, method, **params)), metric)
        records.append({"stage": stage, "layer": name, "similarity": sims.nanmean().item(),
                        "similarity_std": sims[~sims.isnan()].std().item() if len(sims) > 1 else 0.0})
    return records


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
