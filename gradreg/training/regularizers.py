"""Input-gradient penalties; a ``REGULARIZERS`` registry of ``penalty(model, x, y) -> scalar``.

- ``grad_y``: double backpropagation (Drucker & LeCun 1992; Ross & Doshi-Velez 2018, arXiv 1711.09404),
  mean_n ‖∇ₓ CE(y_n, f(x_n))‖²₂.
- ``grad_uniform``: the paper's label-free "Grad Reg (1/K)", the same on −(1/K) Σ_k log p_k.
- ``grad_fd``: a finite-difference estimate along the detached gradient direction (Finlay & Oberman 2019,
  arXiv 1905.11468): d_n = [ℓ_n(x + h·v_n) − ℓ_n(x)] / h ≈ ‖∇ₓℓ_n‖₂ with v_n = ∇ₓℓ_n / ‖∇ₓℓ_n‖, penalty mean_n d_n²,
  differentiated exactly through both forward passes. No backward pass is differentiated twice.
The training loop uses ``loss_terms`` so the clean forward pass is shared between the loss and the penalty. Every
penalty differentiates ``gradreg.fastgrad.input_gradient_model``: the model's own parameters and buffers, with the
first layer's input gradient and BatchNorm's double backward computed faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.core.config import REGULARIZER_NAMES
from gradreg.core.validation import check_fit
from gradreg.fastgrad.copies import input_gradient_model

FD_STEP = 0.01  # h, in pixel units of [0, 1] images (Finlay & Oberman use a step of this order)


@dataclass
class LossTerms:
    """``loss = ce + lam * penalty``; ``logits`` of the clean forward pass, for accuracy bookkeeping."""

    loss: torch.Tensor
    ce: torch.Tensor
    penalty: torch.Tensor
    logits: torch.Tensor


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Per-example CE ``(N,)`` against int labels ``(N,)`` or soft targets ``(N, K)``, on ``logits / T``."""
    logits = logits / temperature if temperature != 1.0 else logits
    if target.dtype.is_floating_point:
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
    return F.cross_entropy(logits, target, reduction="none")


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-example −(1/K) Σ_k log p_k ``(N,)``: CE against the uniform distribution (label-free)."""
    return -F.log_softmax(logits, dim=1).mean(dim=1)


def loss_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, regularizer: str, lam: float,
               temperature: float = 1.0) -> LossTerms:
    """Training loss with an input-gradient penalty, sharing one clean forward pass.

    Args:
        model: returns logits ``(N, K)``; its train/eval mode is left as it is (BatchNorm stays in training
            mode during the penalty, as in the authors' code).
        x: images ``(N, C, H, W)``.
        y: int labels ``(N,)`` or soft targets ``(N, K)`` (distillation).
        regularizer: a key of ``REGULARIZERS``.
        lam: λ_eff ≥ 0, weight on the per-example mean of the squared gradient norm (PAPER.md §1).
        temperature: the loss is computed on ``logits / temperature`` (distillation); the penalty uses the same loss.
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; valid: {', '.join(sorted(REGULARIZERS))}")
    need_grad = regularizer != "none"
    x = x.detach().requires_grad_(need_grad)
    if need_grad:  # the first layer's input gradient by matmul; BatchNorm's double backward written out
        model = input_gradient_model(model, private_input=True)  # x is this call's own leaf
    logits = model(x)
    ce_n = cross_entropy(logits, y, temperature=temperature)
    if not need_grad:
        ce = ce_n.mean()
        return LossTerms(ce, ce, torch.zeros((), device=x.device), logits)
    ce_sum = ce_n.sum()  # one reduction serves the loss and the gradient
    if regularizer == "grad_fd":
        penalty = _fd_penalty(model, x, y, ce_n, ce_sum, temperature)
    else:
        # Σ_n ℓ_n has ∇_{x_n} = ∇ℓ_n, so one backward gives every per-example gradient.
        scaled = logits / temperature if temperature != 1.0 else logits
        penalized = ce_sum if regularizer == "grad_y" else uniform_cross_entropy(scaled).sum()
        (g,) = torch.autograd.grad(penalized, x, create_graph=True)
        penalty = g.pow(2).sum() / len(x)  # mean_n ‖g_n‖²: one reduction, fewer ops to differentiate twice
    ce = ce_sum / len(x)
    return LossTerms(ce + lam * penalty, ce, penalty, logits)


def _fd_penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ce_n: torch.Tensor, ce_sum: torch.Tensor,
                temperature: float) -> torch.Tensor:
    # Two backward passes in all: this one to x only (no weight gradients), then the caller's through both graphs.
    (g,) = torch.autograd.grad(ce_sum, x, retain_graph=True)
    scale = FD_STEP / g.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,) h / ‖g_n‖: x + scale·g = x + h·v_n
    ce_step = cross_entropy(model(x.detach() + scale.view(-1, *([1] * (g.dim() - 1))) * g), y,
                            temperature=temperature)
    # mean_n d_n² with d_n = (ℓ_n(x + h·v_n) − ℓ_n(x)) / h ≈ ‖∇ₓℓ_n‖₂
    return (ce_step - ce_n).pow(2).mean() / FD_STEP**2


def _penalty_fn(name: str) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    def penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_terms(model, x, y, regularizer=name, lam=0.0).penalty

    penalty.__name__ = name
    penalty.__doc__ = (f"The ``{name}`` penalty: a scalar, mean over examples, differentiable in the parameters. "
                       "x: images (N, C, H, W); y: labels (N,) or soft targets (N, K).")
    return penalty


REGULARIZERS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    name: _penalty_fn(name) for name in REGULARIZER_NAMES
}


def penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, regularizer: str = "grad_y") -> torch.Tensor:
    """Mean over examples of the squared input-gradient norm of ``regularizer``'s loss (a scalar tensor)."""
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; valid: {', '.join(sorted(REGULARIZERS))}")
    if y is None:
        raise ValueError("penalty needs the labels y (N,)")
    check_fit(model, x, y)
    return REGULARIZERS[regularizer](model, x, y)
