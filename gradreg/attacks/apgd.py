"""Auto-PGD, L∞: PGD with momentum whose step size halves, per example, whenever progress stalls; its losses.

Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", arXiv 2003.01690 (§3, Algorithm 1). ``apgd`` ascends cross-entropy, the DLR loss or the margin;
``apgd_targeted`` (APGD-T) the targeted DLR loss towards each of the top non-true classes in turn; ``apgd_trace``
also returns the best-loss trace, for sanity checks. The search itself, its step-size checkpoints and its losses
are ``gradreg.attacks.apgd_search``'s. AutoAttack's ensemble is ``gradreg.attacks.ensemble``.
"""

from __future__ import annotations

import torch
from torch import nn

from gradreg.attacks.apgd_search import (LOSSES, MOMENTUM, RHO, apgd_search, checkpoints, dlr_loss,  # noqa: F401
                                         objective)
from gradreg.attacks.descent import Eps, check_eps, generator_for, radius_like
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_labelled


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Eps, *, steps: int, loss: str,
           targeted: bool) -> int:
    """Validate the common arguments; returns K, the number of classes."""
    check_eps(eps, len(x))
    check_count("steps", steps)
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    k = check_labelled(model, x, y)
    needed = (4 if targeted else 3) if loss == "dlr" else 2
    if k < needed:
        raise ValueError(f"the {'targeted ' if targeted else ''}{loss} loss needs K >= {needed} classes, got {k}")
    return k


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1)


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 100, loss: str = "ce",
         restarts: int = 1, seed: int | None = None) -> torch.Tensor:
    """Auto-PGD, L∞ (Croce & Hein 2020, arXiv 2003.01690): step size 2ε halved at checkpoints, momentum 0.75.

    Only the examples the model classifies correctly are attacked (the others are adversarial already and come
    back unchanged). Per example the first misclassified iterate is kept; where none is found, the highest-loss
    iterate over all restarts.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``.
        eps: L∞ radius in pixel units of [0, 1] images (a number or per-example radii ``(N,)``).
        steps: iterations per restart (gradient evaluations: steps + 1); loss: one of ``LOSSES`` ("ce", "dlr":
            the untargeted DLR loss, "margin"); restarts: random starts, each on the examples still correct.
        seed: seed of the random starts (None: drawn from torch's global generator).
    Returns:
        adversarial images, shape of ``x``, in [0, 1] and in the ε-ball.
    """
    _check(model, x, y, eps, steps=steps, loss=loss, targeted=False)
    check_count("restarts", restarts)
    radius, x_adv = radius_like(eps, x), x.detach().clone()
    if not bool((radius > 0).any()):
        return x_adv
    generator = generator_for(seed)
    with eval_mode(model):
        todo, best = _predict(model, x) == y, torch.full((len(x),), float("-inf"), device=x.device)
        for _ in range(restarts):
            rows = todo.nonzero().flatten()
            if not len(rows):
                break
            found, trace = apgd_search(model, x[rows], y[rows], radius=radius[rows], steps=steps, loss=loss,
                                       target=None, generator=generator, stop=True)
            correct = _predict(model, found) == y[rows]
            take = ~correct | (trace[-1] > best[rows])
            x_adv[rows[take]], best[rows[take]] = found[take], trace[-1][take]
            todo[rows] = correct
    return x_adv


def apgd_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 100,
                  targets: int = 3, seed: int | None = None) -> torch.Tensor:
    """APGD-T (Croce & Hein 2020, arXiv 2003.01690): APGD on the targeted DLR loss towards the clean image's
    2nd, 3rd, … most likely classes in turn, each run on the examples still classified correctly.

    It picks its targets itself and succeeds when the image is misclassified (as any class): an untargeted attack.
    Examples misclassified from the start come back unchanged; per example the first misclassified iterate is kept,
    else the highest-loss iterate of the first target's run.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; eps: L∞ radius in pixel units (a number or
            per-example radii ``(N,)``); steps: iterations per target; targets: how many of the top non-true
            classes to try, 1 to K − 1 (K ≥ 4); seed: seed of the random starts.
    Returns:
        adversarial images, shape of ``x``, in [0, 1] and in the ε-ball.
    """
    k = _check(model, x, y, eps, steps=steps, loss="dlr", targeted=True)
    check_count("targets", targets)
    if targets > k - 1:
        raise ValueError(f"targets must be at most K - 1 = {k - 1} (the non-true classes), got {targets}")
    radius, x_adv = radius_like(eps, x), x.detach().clone()
    if not bool((radius > 0).any()):
        return x_adv
    generator = generator_for(seed)
    with eval_mode(model), torch.no_grad():
        logits = model(x)
    ranked = logits.scatter(1, y[:, None], float("-inf")).topk(targets, dim=1).indices  # (N, targets)
    todo = logits.argmax(1) == y
    with eval_mode(model):
        for rank in range(targets):
            rows = todo.nonzero().flatten()
            if not len(rows):
                break
            found, _ = apgd_search(model, x[rows], y[rows], radius=radius[rows], steps=steps, loss="dlr",
                                   target=ranked[rows, rank], generator=generator, stop=True)
            fooled = _predict(model, found) != y[rows]
            take = fooled | (rank == 0)
            x_adv[rows[take]], todo[rows] = found[take], ~fooled
    return x_adv


def apgd_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 100,
               loss: str = "ce", target: torch.Tensor | None = None,
               seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD as a pure optimizer (Croce & Hein 2020, arXiv 2003.01690): every example runs all ``steps``, none
    stops when misclassified, and the highest-loss iterate comes back with the best loss after each step.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; eps: L∞ radius in pixel units; steps,
            loss, seed: as in ``apgd``.
        target: None (untargeted) or classes ``(N,)`` ≠ y: then the targeted loss, −CE(t), the targeted DLR
            loss, or z_t − z_y for "margin".
    Returns:
        (x_best ``(N, C, H, W)`` in [0, 1] and the ε-ball, the highest-loss iterate; trace ``(steps + 1, N)``,
        the best loss after 0, 1, …, ``steps`` steps, non-decreasing, ``trace[-1]`` the loss at x_best).
    """
    k = _check(model, x, y, eps, steps=steps, loss=loss, targeted=target is not None)
    if target is not None:
        ok = isinstance(target, torch.Tensor) and target.shape == y.shape and not target.is_floating_point()
        if not ok or bool(((target < 0) | (target >= k) | (target == y.to(target.device))).any()):
            raise ValueError(f"target must be classes in [0, {k}) different from y, of shape {tuple(y.shape)}")
        target = target.to(y.device, torch.long)
    with eval_mode(model):
        return apgd_search(model, x, y, radius=radius_like(eps, x), steps=steps, loss=loss, target=target,
                           generator=generator_for(seed), stop=False)
