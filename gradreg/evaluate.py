"""Evaluation: predictions, accuracy and input-gradient statistics (functions return data; they never print)."""

from __future__ import annotations

import torch
from torch import nn

from gradreg.attacks import eval_mode, loss_gradient

EVAL_BATCH = 1000


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be images (N, C, H, W), got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must be labels (N,) with N = {len(x)}, got shape {tuple(y.shape)}")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits ``(N, K)`` in eval mode, batched; the model's mode is restored afterwards."""
    device = next(model.parameters()).device
    with eval_mode(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> float:
    """Fraction of ``x`` (``(N, C, H, W)`` in [0, 1]) classified as ``y`` (``(N,)``), in [0, 1]."""
    _check_pair(x, y)
    if len(x) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (predict_logits(model, x, batch_size=batch_size).argmax(1) == y.cpu()).float().mean().item()


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Per-example ‖∇ₓ CE(y, f(x))‖₂ ``(N,)`` in eval mode (PAPER.md §5 diagnostics)."""
    _check_pair(x, y)
    device = next(model.parameters()).device
    with eval_mode(model):
        norms = [loss_gradient(model, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
                 .flatten(1).norm(dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(norms)
