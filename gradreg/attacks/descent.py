"""The one projected-step loop every gradient attack runs through, and its threat-model geometry (foolbox's
``gradient_descent_base``): ``_normalize`` a gradient into a unit step, ``_project`` onto the L∞ / L2 ball,
``_random_start`` inside it; the checks of an attack's size (``check_eps``, ``check_epsilons``, ``refuses``) and of
its norm. Radii may be per example.

References: Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks", arXiv 1706.06083.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable
from typing import Callable, Literal, Union

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.fastgrad.copies import eval_gradient_model

Norm = Literal["linf", "l2"]
Eps = Union[float, torch.Tensor]  # a radius, or per-example radii (N,)
NORMS = ("linf", "l2")


def check_eps(eps: Eps, n: int | None = None, *, name: str = "eps") -> None:
    """``ValueError`` unless ``eps`` is a finite number >= 0 (not a bool) or per-example values ``(n,)``; ``name``
    is the knob's (``eps``, a radius; ``step_size``; ``theta``)."""
    if isinstance(eps, torch.Tensor):
        ok = eps.dim() == 1 and (n is None or len(eps) == n) and bool((torch.isfinite(eps) & (eps >= 0)).all())
        if not ok:
            raise ValueError(f"{name} as a tensor must hold finite per-example values >= 0 of shape ({n},), "
                             f"got shape {tuple(eps.shape)}")
        return
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (or a tensor of per-example values), got {eps!r}")


def check_epsilons(epsilons: Iterable[float]) -> list[float]:
    """The ε grid as a non-empty list of finite numbers >= 0; ``ValueError`` otherwise."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Iterable):
        raise ValueError(f"epsilons must be a sequence of numbers, got {epsilons!r}")
    values = list(epsilons)
    if not values:
        raise ValueError("epsilons must not be empty")
    for eps in values:
        check_eps(eps)
    return [float(eps) for eps in values]


def check_norm(norm: str) -> None:
    """``ValueError`` unless ``norm`` is one of ``NORMS``."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def refuses(**renamed: str) -> Callable[[Callable], Callable]:
    """Refuse a knob's old spelling with a ``ValueError`` naming the new one, e.g. ``@refuses(eps="step_size")``
    for an attack whose size is not a radius (a plain call would say only "unexpected keyword")."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)  # inspect.signature still reads fn's own keywords
        def checked(*args, **kwargs):
            for old, new in renamed.items():
                if old in kwargs:
                    raise ValueError(f"{fn.__name__} takes {new}=, not {old}= (it has no ε-ball of radius {old})")
            return fn(*args, **kwargs)
        return checked
    return wrap


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def radius_like(eps: Eps, x: torch.Tensor) -> torch.Tensor:
    """``eps`` (a number or (N,) radii) as a tensor ``(N, 1, 1, 1)`` broadcastable against ``x``."""
    return _view(torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(len(x)), x)


def generator_for(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``; None draws the seed from torch's global generator."""
    return torch.Generator().manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)


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


def _project(x_adv: torch.Tensor, x: torch.Tensor, radius: torch.Tensor, norm: Norm) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        return x + delta.clamp(-radius, radius)
    norms, r = delta.flatten(1).norm(dim=1), radius.flatten()
    factor = torch.where(norms > r, r / norms.clamp_min(1e-12), torch.ones_like(norms))
    return x + delta * _view(factor, delta)


def _random_start(x: torch.Tensor, radius: torch.Tensor, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator).to(x) * 2 - 1
        return (x + radius * noise).clamp(0, 1)
    direction = torch.randn(x.shape, generator=generator).to(x)
    fraction = _view(torch.rand(len(x), generator=generator).to(x), x)
    return (x + _normalize(direction, "l2") * fraction * radius).clamp(0, 1)


def step_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: Norm = "linf",
                   targeted: bool = False) -> torch.Tensor:
    """Unit step ``(N, C, H, W)`` that ascends CE(y) (descends it when ``targeted``): sign for L∞, unit L2 else."""
    d = _normalize(loss_gradient(model, x, y), norm)
    return -d if targeted else d


def apply_direction(x: torch.Tensor, direction: torch.Tensor, eps: Eps) -> torch.Tensor:
    """One L∞ step of size ε along ``direction``, projected and clipped: the loop's arithmetic for ``steps=1``."""
    radius = radius_like(eps, x)
    return _project(x + radius * direction, x, radius, "linf").clamp(0, 1)


def projected_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps | None, step: Eps,
                    steps: int, norm: Norm, targeted: bool, random_start: bool,
                    generator: torch.Generator | None) -> torch.Tensor:
    """The one attack loop: ascend CE(y) (descend it when ``targeted``), project to the ε-ball unless ``eps`` is
    None (unbounded), clip to [0, 1]."""
    model = eval_gradient_model(model)  # BatchNorm folded, the first layer's input gradient by matmul
    x0 = x.detach()
    radius = None if eps is None else radius_like(eps, x0)
    step = radius_like(step, x0)
    x_adv = x0.clone()
    if random_start and radius is not None:
        x_adv = _random_start(x0, radius, norm, generator if generator is not None else generator_for(None))
    for _ in range(steps):
        x_adv = x_adv + step * step_direction(model, x_adv, y, norm=norm, targeted=targeted)
        x_adv = (x_adv if radius is None else _project(x_adv, x0, radius, norm)).clamp(0, 1)
    return x_adv.detach().contiguous()
