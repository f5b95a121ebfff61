"""Gradient attacks on [0, 1] images through one projected-step loop (foolbox style).

FGSM (Goodfellow et al. 2015) is one L∞ step of size ε without random start; PGD (Madry et al. 2018,
arXiv 1706.06083) is the same loop with a random start and projection onto the ε-ball.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["linf", "l2"]
NORMS = ("linf", "l2")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the model in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_eps(eps: float) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ CE(y, f(x)) per example, shape of ``x``; no ``.grad`` is left on ``x`` or the parameters."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def _normalize(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return g.sign()
    return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        return x + delta.clamp(-eps, eps)
    norms = delta.flatten(1).norm(dim=1)
    factor = torch.where(norms > eps, eps / norms.clamp_min(1e-12), torch.ones_like(norms))
    return x + delta * _view(factor, delta)


def _random_start(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x) * 2 - 1
        return (x + eps * noise).clamp(0, 1)
    direction = torch.randn(x.shape, generator=generator, device="cpu").to(x)
    radius = torch.rand(len(x), generator=generator, device="cpu").to(x) * eps
    return (x + _normalize(direction, "l2") * _view(radius, x)).clamp(0, 1)


def _projected_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float | None, step: float,
                     steps: int, norm: Norm, targeted: bool, random_start: bool,
                     generator: torch.Generator | None) -> torch.Tensor:
    """The one attack loop: ascend CE(y) (descend it when ``targeted``), project to the ε-ball unless ``eps`` is
    None (unbounded), clip to [0, 1]."""
    x0 = x.detach()
    x_adv = _random_start(x0, eps, norm, generator) if random_start and eps else x0.clone()
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        x_adv = x_adv + sign * step * _normalize(loss_gradient(model, x_adv, y), norm)
        x_adv = (_project(x_adv, x0, eps, norm) if eps is not None else x_adv).clamp(0, 1)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Fast gradient sign method: clip(x + ε·sign(∇ₓ CE(y, f(x))), 0, 1), model in eval mode.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)`` (true or predicted).
        eps: L∞ radius in pixel units of [0, 1] images.
    """
    _check_eps(eps)
    with eval_mode(model):
        return _projected_steps(model, x, y, eps=eps, step=eps, steps=1, norm="linf", targeted=False,
                                random_start=False, generator=None)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 40,
        step_size: float | None = None, norm: Norm = "linf", random_start: bool = True,
        seed: int | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) in the L∞ or L2 ball of radius ``eps``.

    Args:
        eps: radius in pixel units of [0, 1] images.
        steps: number of gradient steps; step_size defaults to 2.5·ε/steps.
        seed: seed of the random start (None: torch's global generator).
    """
    _check_eps(eps)
    _check_norm(norm)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    step = 2.5 * eps / steps if step_size is None else step_size
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with eval_mode(model):
        return _projected_steps(model, x, y, eps=eps, step=step, steps=steps, norm=norm, targeted=False,
                                random_start=random_start, generator=generator)
