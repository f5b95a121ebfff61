"""The Auto-PGD search (L∞) and its losses: momentum steps whose size halves, per example, at checkpoints where
progress stalled, keeping each example's best point (Croce & Hein 2020, arXiv 2003.01690, §3 and Algorithm 1).

``gradreg.attacks.apgd`` wraps it into the public attacks (APGD, APGD-T, the trace).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks.descent import _project, _random_start
from gradreg.attacks.random_search import margin
from gradreg.fastgrad.copies import eval_gradient_model

LOSSES = ("ce", "dlr", "margin")
MOMENTUM = 0.75  # α: weight of the new gradient step against the previous move
RHO = 0.75  # a checkpoint halves η when fewer than this fraction of its steps raised the loss
FIRST, SHRINK, LEAST = 0.22, 0.03, 0.06  # checkpoint spacing, as fractions of the steps


def checkpoints(steps: int) -> list[int]:
    """Iterations w_j = ⌈p_j·steps⌉ at which η may halve: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (in whole steps, at least one)."""
    length, shrink, least = (max(int(f * steps), 1) for f in (FIRST, SHRINK, LEAST))
    marks, at = [], length
    while at <= steps:
        marks.append(at)
        length = max(length - shrink, least)
        at += length
    return marks


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Difference-of-logits-ratio loss ``(N,)`` (Croce & Hein 2020, eq. 6 and 7), π = logits sorted descending.

    Untargeted: −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3); targeted at ``target`` t:
    −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2); both + 1e-12 below. Invariant to shifting and scaling the logits.

    Args:
        logits: ``(N, K)``, K ≥ 3 (K ≥ 4 targeted); y: labels ``(N,)``; target: classes ``(N,)`` or None.
    """
    top = logits.topk(3 if target is None else 4, dim=1).values  # (N, 3 or 4)
    if target is None:
        return -margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return -gap / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def objective(logits: torch.Tensor, y: torch.Tensor, *, loss: str = "ce",
              target: torch.Tensor | None = None) -> torch.Tensor:
    """The per-example loss ``(N,)`` APGD ascends: ``"ce"`` CE(y) (−CE(t) targeted), ``"dlr"`` ``dlr_loss``,
    ``"margin"`` max_{j≠y} z_j − z_y (z_t − z_y targeted; Carlini & Wagner's margin, linear in linear logits)."""
    if loss == "dlr":
        return dlr_loss(logits, y, target)
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none") if target is None else \
            -F.cross_entropy(logits, target, reduction="none")
    if target is None:
        return -margin(logits, y)
    return (logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])).squeeze(1)


@dataclass
class _State:
    """Per-example search state; every field has the batch as its first dimension."""

    rows: torch.Tensor  # (n,) indices into the caller's batch
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    radius: torch.Tensor  # (n, 1, 1, 1)
    x_adv: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    loss: torch.Tensor  # (n,) at x_adv
    best: torch.Tensor
    best_loss: torch.Tensor
    best_grad: torch.Tensor
    eta: torch.Tensor  # (n, 1, 1, 1) step size
    rises: torch.Tensor  # (n,) steps that raised the loss since the last checkpoint
    halved: torch.Tensor  # (n,) bool: η halved at the last checkpoint
    best_at_check: torch.Tensor

    def keep(self, mask: torch.Tensor) -> _State:
        return _State(**{f.name: None if (v := getattr(self, f.name)) is None else v[mask] for f in fields(self)})


def _evaluate(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str):
    """(loss ``(n,)``, misclassified ``(n,)``, ∇ₓ loss) at ``x_adv``; the gradient reaches ``x_adv`` only."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        values = objective(logits, y, loss=loss, target=target)
        (grad,) = torch.autograd.grad(values.sum(), x_adv)
    return values.detach(), logits.detach().argmax(1) != y, grad


def _start(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, radius: torch.Tensor,
           loss: str, generator: torch.Generator) -> tuple[_State, torch.Tensor]:
    """The search state at a uniform random point of the ε-ball ∩ [0, 1], with η = 2ε; and who is fooled there."""
    x_adv = _random_start(x, radius, "linf", generator)
    value, fooled, grad = _evaluate(model, x_adv, y, target, loss)
    state = _State(rows=torch.arange(len(x), device=x.device), x=x, y=y, target=target, radius=radius,
                   x_adv=x_adv, x_prev=x_adv, grad=grad, loss=value, best=x_adv, best_loss=value, best_grad=grad,
                   eta=2 * radius, rises=torch.zeros_like(value), halved=torch.zeros_like(value, dtype=torch.bool),
                   best_at_check=value)
    return state, fooled


def _step(model: nn.Module, s: _State, loss: str, *, first: bool) -> torch.Tensor:
    """One APGD iterate: a projected sign step of size η, then (after the first) momentum with the last move."""
    z = _project(s.x_adv + s.eta * s.grad.sign(), s.x, s.radius, "linf").clamp(0, 1)
    if not first:
        z = s.x_adv + MOMENTUM * (z - s.x_adv) + (1 - MOMENTUM) * (s.x_adv - s.x_prev)
        z = _project(z, s.x, s.radius, "linf").clamp(0, 1)
    value, fooled, grad = _evaluate(model, z, s.y, s.target, loss)
    s.x_prev, s.x_adv, s.grad = s.x_adv, z, grad
    s.rises, s.loss = s.rises + (value > s.loss), value
    better = value > s.best_loss
    s.best, s.best_grad = torch.where(_view(better), z, s.best), torch.where(_view(better), grad, s.best_grad)
    s.best_loss = torch.where(better, value, s.best_loss)
    return fooled


def _view(flags: torch.Tensor) -> torch.Tensor:
    return flags[:, None, None, None]


def _checkpoint(s: _State, length: int) -> None:
    """Halve η and go back to the best point where fewer than ρ of the last ``length`` steps raised the loss
    (condition 1) or where η was kept last time and the best loss has not moved since (condition 2)."""
    halve = (s.rises < RHO * length) | (~s.halved & (s.best_loss <= s.best_at_check))
    s.eta = torch.where(_view(halve), s.eta / 2, s.eta)
    s.x_adv = torch.where(_view(halve), s.best, s.x_adv)
    s.grad = torch.where(_view(halve), s.best_grad, s.grad)
    s.loss = torch.where(halve, s.best_loss, s.loss)
    s.halved, s.best_at_check, s.rises = halve, s.best_loss, torch.zeros_like(s.rises)


def apgd_search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, radius: torch.Tensor, steps: int,
                loss: str, target: torch.Tensor | None, generator: torch.Generator,
                stop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD from a random start (model in eval mode; inputs validated by the caller).

    Args:
        radius: L∞ radii ``(N, 1, 1, 1)``; stop: freeze an example at its first misclassified iterate and stop
            computing it (else every example runs all ``steps``).
    Returns:
        (x_out ``(N, C, H, W)``: the first misclassified iterate when ``stop`` found one, else the highest-loss
        iterate; trace ``(steps + 1, N)``: the best loss after each step, frozen once an example stops).
    """
    model = eval_gradient_model(model)  # BatchNorm folded, the first layer's input gradient by matmul
    marks = checkpoints(steps)
    lengths = dict(zip(marks, (m - p for p, m in zip([0, *marks], marks))))  # w_j → w_j − w_{j−1}
    out, trace = x.detach().clone(), x.new_zeros(steps + 1, len(x))
    s, fooled = _start(model, x.detach(), y.long(), target, radius, loss, generator)  # int32 labels: gather wants int64
    for i in range(steps + 1):
        if i:
            fooled = _step(model, s, loss, first=i == 1)
        trace[i, s.rows] = s.best_loss
        if stop and bool(fooled.any()):
            out[s.rows[fooled]], trace[i:, s.rows[fooled]] = s.x_adv[fooled], s.best_loss[fooled]
            s = s.keep(~fooled)
        if not len(s.rows):
            break
        if i in lengths:
            _checkpoint(s, lengths[i])
    out[s.rows] = s.best
    return out, trace
