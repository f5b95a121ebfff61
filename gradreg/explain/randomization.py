"""The cascading model-randomization sanity check (Adebayo et al. 2018, arXiv 1810.03292) and the map similarity
it is judged by (Spearman rank correlation or SSIM, Wang et al. 2004): a saliency method that explains the model
gives maps that change when the model's weights are re-initialized.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.core.validation import check_maps
from gradreg.explain.saliency import Target, resolve_target, saliency

Similarity = Literal["spearman", "ssim"]
SIMILARITIES = ("spearman", "ssim")
SSIM_WINDOW, SSIM_SIGMA = 7, 1.5  # Gaussian window (Wang et al. 2004 use 11/1.5; 7 suits 28×28 maps)


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
    flat_a, flat_b = a.detach().flatten(1).double(), b.detach().flatten(1).double()  # (N, D) in float64
    return _pearson(_ranks(flat_a), _ranks(flat_b)).float()


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
        Tidy records ``{"stage", "layer", "kind", "similarity", "similarity_std"}``, stage 0 = trained model
        (1.0); ``layer`` is the module's name in the model, ``kind`` its class (``Conv2d``, ``Linear``…).
    """
    t = resolve_target(model, x, target, y)
    post = torch.abs if absolute else (lambda m: m)
    reference = post(saliency(model, x, t, method, **params))
    randomized = copy.deepcopy(model)
    layers = [(name, m) for name, m in randomized.named_modules() if any(True for _ in m.parameters(recurse=False))]
    generator = torch.Generator().manual_seed(seed)
    records = [{"stage": 0, "layer": "(trained)", "kind": "", "similarity": 1.0, "similarity_std": 0.0}]
    for stage, (name, layer) in enumerate(reversed(layers), start=1):
        _reinitialize(layer, generator)
        sims = map_similarity(reference, post(saliency(randomized, x, t, method, **params)), metric)
        valid = sims[~sims.isnan()]  # a constant map has no rank correlation: NaN, left out of the spread too
        records.append({"stage": stage, "layer": name, "kind": type(layer).__name__, "similarity": sims.nanmean().item(),
                        "similarity_std": valid.std().item() if len(valid) > 1 else 0.0})
    return records
