"""Jacobian-based saliency map attack, increasing variant (θ > 0), batched over images.

Papernot et al. 2016, "The Limitations of Deep Learning in Adversarial Settings", arXiv 1511.07528; the
pair-wise saliency map follows the authors' cleverhans implementation, on the logits (as Carlini & Wagner
2017 recommend). The public ``jsma`` validates its inputs once; ``saliency_map_attack`` only computes.
"""

from __future__ import annotations

import torch
from torch import nn

from gradreg.attacks.descent import Eps, check_eps, generator_for, radius_like, refuses
from gradreg.attacks.targets import AttackTarget, target_classes
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_fraction, check_labelled

PAIR_BUDGET = 2**23  # elements of one (images, D, D) pair-score block: bounds the search's memory
OUTSIDE = 1e30  # β of pixels outside the search domain: any pair containing one gets a positive β sum


def _logit_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """(∂Z_t/∂x, Σ_{j≠t} ∂Z_j/∂x, logits): the two sums of logit-Jacobian rows the saliency map needs,
    ``(N, D)`` each (two vector-Jacobian products instead of the full K-row Jacobian)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    (alpha,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x, retain_graph=True)
    (total,) = torch.autograd.grad(logits.sum(), x)
    return alpha.flatten(1), (total - alpha).flatten(1), logits.detach()


def _best_pairs(alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor):
    """Per image the pixel pair p ≠ q in the search domain maximizing (α_p + α_q)·|β_p + β_q| subject to
    α_p + α_q > 0 and β_p + β_q < 0. Returns (p, q, found), each ``(N,)``; vectorized, chunked by images."""
    n, d = alpha.shape
    minus_beta = torch.where(domain, -beta, torch.full_like(beta, -OUTSIDE))  # outside pixels void the pair
    rows = max(1, PAIR_BUDGET // (d * d))
    best, top = [], []
    for i in range(0, n, rows):
        # relu(α sum)·relu(−β sum) is the score where both constraints hold and 0 elsewhere; (n', D, D)
        score = (alpha[i : i + rows, :, None] + alpha[i : i + rows, None, :]).relu_()
        score.mul_((minus_beta[i : i + rows, :, None] + minus_beta[i : i + rows, None, :]).relu_())
        score.diagonal(dim1=1, dim2=2).zero_()
        values, args = score.flatten(1).max(1)
        best.append(args)
        top.append(values)
    best = torch.cat(best)
    return best // d, best % d, torch.cat(top) > 0


def saliency_map_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, theta: torch.Tensor,
                        gamma: float) -> torch.Tensor:
    """Push pixel pairs up by θ until each image is classified as its target or γ of its pixels changed.

    Each pixel changes at most once (it leaves the search domain), so ‖x' − x‖∞ ≤ θ and at most
    2·⌊γD/2⌋ ≤ γD pixels change. An image stops early when no admissible pair is left.

    Args:
        model: in eval mode; x: images ``(N, C, H, W)`` in [0, 1]; target: classes ``(N,)``.
        theta: per-image increase ``(N,)`` in pixel units (paper: +1); gamma: max fraction of pixels, in [0, 1].
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    d = x[0].numel()
    flat = x.detach().flatten(1).clone()  # (N, D)
    domain = flat < 1  # pixels already at the top cannot be pushed up
    active = theta > 0
    for _ in range(int(gamma * d) // 2):  # two pixels per iteration
        idx = active.nonzero().flatten()
        if len(idx) == 0:
            break
        alpha, beta, logits = _logit_gradients(model, flat[idx].view(-1, *x.shape[1:]), target[idx])
        p, q, found = _best_pairs(alpha, beta, domain[idx])
        go = found & (logits.argmax(1) != target[idx])
        active[idx[~go]] = False
        idx, p, q = idx[go], p[go], q[go]
        step = theta[idx]
        flat[idx, p] = (flat[idx, p] + step).clamp(max=1)
        flat[idx, q] = (flat[idx, q] + step).clamp(max=1)
        domain[idx, p] = False
        domain[idx, q] = False
    return flat.view_as(x)


@refuses(eps="theta")
def jsma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, theta: Eps = 1.0, gamma: float = 0.25,
         target: AttackTarget = "next", seed: int | None = None) -> torch.Tensor:
    """JSMA (Papernot et al. 2016, arXiv 1511.07528): pixel pairs picked by the logit-Jacobian saliency map are
    pushed up by ``theta`` until the image is classified as the target (batched; see ``saliency_map_attack``).

    Args:
        theta: θ, the per-pixel increase in pixel units (paper: +1, i.e. saturate); it bounds ‖x' − x‖∞ (a number
            or per-example values ``(N,)``).
        gamma: max fraction of pixels changed, in [0, 1] (paper: 0.25); target, seed: as in ``tgsm``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_labelled(model, x, y)
    check_eps(theta, len(x), name="theta")
    check_fraction("gamma", gamma)
    with eval_mode(model):
        t = target_classes(model, x, y, target, generator=generator_for(seed))
        return saliency_map_attack(model, x, t, theta=radius_like(theta, x).flatten(), gamma=gamma)
