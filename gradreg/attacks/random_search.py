"""Square attack, L∞: score-based random search over square-shaped updates at the vertices of the ε-ball.

Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box adversarial attack
via random search", arXiv 1912.00049. It reads only the logits, never a gradient, so gradient masking cannot
hide a model from it. The public ``square`` validates its inputs once; ``square_search`` only computes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradreg.attacks.descent import Eps, check_eps, generator_for, radius_like
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_fraction, check_labelled

P_INIT = 0.3  # initial fraction of pixels a square covers: suits 28×28 images (authors' ImageNet value: 0.05)
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # the authors' schedule, in units of 10 000 queries


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j ``(N,)``: negative once the example is misclassified (the authors' margin loss)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(1)


def square_fraction(p_init: float, i: int, queries: int) -> float:
    """Fraction of the image a square covers at iteration ``i``: ``p_init`` halved at the authors' checkpoints."""
    scaled = int(i / queries * 10000)
    return p_init / 2 ** sum(scaled > b for b in HALVINGS)


def _signs(shape: tuple, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=generator) * 2 - 1).to(like)


def _windows(n: int, h: int, w: int, side: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """A random ``side``×``side`` square per image, as a boolean mask ``(N, 1, H, W)``."""
    top = torch.randint(0, h - side + 1, (n, 1, 1), generator=generator).to(like.device)
    left = torch.randint(0, w - side + 1, (n, 1, 1), generator=generator).to(like.device)
    rows = torch.arange(h, device=like.device)[None, :, None]
    cols = torch.arange(w, device=like.device)[None, None, :]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return inside[:, None]


@torch.no_grad()
def square_search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, radius: torch.Tensor, queries: int,
                  p_init: float, generator: torch.Generator) -> torch.Tensor:
    """Untargeted L∞ Square attack: per image, accept a new ±ε square only if it lowers the margin.

    Args:
        model: in eval mode; x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``.
        radius: L∞ radii ``(N, 1, 1, 1)``; queries: model evaluations per image (the first is the
            initialization with vertical ±ε stripes); p_init: initial fraction of pixels a square covers.
    Returns:
        adversarial images, shape of ``x``, in [0, 1], within the ε-ball.
    """
    n, c, h, w = x.shape
    x_best = (x + radius * _signs((n, c, 1, w), generator, x)).clamp(0, 1)
    loss = margin(model(x_best), y)
    for i in range(queries - 1):
        side = min(max(round(math.sqrt(square_fraction(p_init, i, queries) * h * w)), 1), h - 1, w - 1)
        window = _windows(n, h, w, side, generator, x)
        values = radius * _signs((n, c, 1, 1), generator, x)
        active = (loss > 0).nonzero().flatten()  # images still classified correctly
        if len(active) == 0:
            break
        xa = x[active]
        candidate = (xa + torch.where(window[active], values[active], x_best[active] - xa)).clamp(0, 1)
        new_loss = margin(model(candidate), y[active])
        better = new_loss < loss[active]
        x_best[active[better]] = candidate[better]
        loss[active[better]] = new_loss[better]
    return x_best


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, queries: int = 1000,
           p_init: float = P_INIT, seed: int | None = None) -> torch.Tensor:
    """Square attack, L∞ (Andriushchenko et al. 2020, arXiv 1912.00049): gradient-free random search.

    Args:
        eps: L∞ radius in pixel units; queries: model evaluations per image (the budget).
        p_init: initial fraction of pixels a square covers, in (0, 1] (0.3 suits 28×28 images; the authors'
            ImageNet default is 0.05); seed: seed of the search (None: drawn from torch's global generator).
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_labelled(model, x, y)
    check_eps(eps, len(x))
    check_count("queries", queries)
    check_fraction("p_init", p_init, low_open=True)
    with eval_mode(model):
        return square_search(model, x, y, radius=radius_like(eps, x), queries=queries, p_init=p_init,
                             generator=generator_for(seed))
