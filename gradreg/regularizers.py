"""Input-gradient penalties; a ``REGULARIZERS`` registry of ``penalty(model, x, y) -> scalar``.

- ``grad_y``: double backpropagation (Drucker & LeCun 1992; Ross & Doshi-Velez 2018, arXiv 1711.09404),
  mean_n ‖∇ₓ CE(y_n, f(x_n))‖²₂.
- ``grad_uniform``: the paper's label-free "Grad Reg (1/K)", the same on −(1/K) Σ_k log p_k.
- ``grad_fd``: the same penalty as ``grad_y`` without double backpropagation. Its value is exact (the one
  backward pass that gives ∇ₓℓ_n also gives ∇θ Σℓ_n); its parameter gradient is a finite difference of parameter
  gradients along the input gradient, in the spirit of Finlay & Oberman 2019 (arXiv 1905.11468), who take finite
  differences of the loss along the gradient direction:
  ∇θ mean_n ‖g_n‖² = (2/N) Σ_n (∂²ℓ_n/∂θ∂x) g_n ≈ (2/(N·h)) [∇θ Σℓ_n(x + h·g) − ∇θ Σℓ_n(x)],
  a Hessian-vector product by differences of gradients (Pearlmutter 1994, Neural Computation 6(1)). One step
  size h for the batch (the RMS step length is ``FD_STEP``) keeps the coefficients equal across examples, so the
  clean graph is traversed once: two forward and two backward passes in all, 2× a plain step.
The training loop uses ``loss_terms`` so the clean forward pass is shared between the loss and the penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.fastgrad import input_gradient_model
from gradreg.validation import check_fit

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
    if regularizer == "grad_fd":  # the first layer's input gradient by matmul (no double backward runs through it)
        model = input_gradient_model(model)
    logits = model(x)
    ce_n = cross_entropy(logits, y, temperature=temperature)
    if not need_grad:
        ce = ce_n.mean()
        return LossTerms(ce, ce, torch.zeros((), device=x.device), logits)
    ce_sum = ce_n.sum()  # one reduction serves the loss and the gradient
    if regularizer == "grad_fd":
        ce, penalty = _fd_terms(model, x, y, ce_sum, temperature)
        return LossTerms(ce + lam * penalty, ce, penalty, logits)
    else:
        # Σ_n ℓ_n has ∇_{x_n} = ∇ℓ_n, so one backward gives every per-example gradient.
        scaled = logits / temperature if temperature != 1.0 else logits
        penalized = ce_sum if regularizer == "grad_y" else uniform_cross_entropy(scaled).sum()
        (g,) = torch.autograd.grad(penalized, x, create_graph=True)
        penalty = g.pow(2).sum() / len(x)  # mean_n ‖g_n‖²: one reduction, fewer ops to differentiate twice
    ce = ce_sum / len(x)
    return LossTerms(ce + lam * penalty, ce, penalty, logits)


class _Known(torch.autograd.Function):
    """A zero scalar whose gradient with respect to ``params`` is ``grads``, gradients of a graph already traversed:
    a loss can carry them without a second backward pass through that graph."""

    @staticmethod
    def forward(ctx, grads: tuple, *params: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return params[0].new_zeros(())

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return (None, *torch._foreach_mul(ctx.grads, grad_output))  # one launch for every tensor on a GPU


def _fd_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ce_sum: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(ce, penalty) of ``grad_fd``: exact values; parameter gradients as in the module docstring."""
    n = len(x)
    params = [p for p in model.parameters() if p.requires_grad]
    # One backward through the clean graph: ∇ₓ Σℓ_n = (g_n) and ∇θ Σℓ_n together.
    g, *g_params = torch.autograd.grad(ce_sum, [x, *params], materialize_grads=True)
    norms2 = g.flatten(1).pow(2).sum(dim=1)  # (N,) ‖g_n‖²
    value = norms2.mean()
    if not params:  # a frozen model: values only
        return ce_sum.detach() / n, value
    h = FD_STEP / value.sqrt().clamp_min(1e-12)  # one step for the batch: RMS of ‖h·g_n‖ is FD_STEP
    ce_step = cross_entropy(model(x.detach() + h * g), y, temperature=temperature).sum()
    c = 2.0 / (n * h)
    clean = tuple(torch._foreach_div(g_params, n))
    difference = tuple(torch._foreach_mul(g_params, c))
    ce = ce_sum.detach() / n + _Known.apply(clean, *params)
    penalty = value + c * (ce_step - ce_step.detach()) - _Known.apply(difference, *params)
    return ce, penalty


def _penalty_fn(name: str) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    def penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_terms(model, x, y, regularizer=name, lam=0.0).penalty

    penalty.__name__ = name
    penalty.__doc__ = (f"The ``{name}`` penalty: a scalar, mean over examples, differentiable in the parameters. "
                       "x: images (N, C, H, W); y: labels (N,) or soft targets (N, K).")
    return penalty


REGULARIZERS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    name: _penalty_fn(name) for name in ("none", "grad_y", "grad_uniform", "grad_fd")
}


def penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, regularizer: str = "grad_y") -> torch.Tensor:
    """Mean over examples of the squared input-gradient norm of ``regularizer``'s loss (a scalar tensor)."""
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; valid: {', '.join(sorted(REGULARIZERS))}")
    if y is None:
        raise ValueError("penalty needs the labels y (N,)")
    check_fit(model, x, y)
    return REGULARIZERS[regularizer](model, x, y)
