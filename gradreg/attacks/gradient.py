"""The gradient-sign and projected-gradient family, each a few lines over the one loop (``gradreg.attacks.descent``).

FGSM (Goodfellow et al. 2015, arXiv 1412.6572) and TGSM are one L∞ step; iterated TGSM repeats TGSM with no ε-ball
(Ross & Doshi-Velez 2018, arXiv 1711.09404); BIM (Kurakin et al. 2016, arXiv 1607.02533) and PGD (Madry et al. 2018,
arXiv 1706.06083) iterate with projection. Each public function validates its inputs once; the private ones compute.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from gradreg.attacks.descent import (Eps, Norm, apply_direction, check_eps, check_epsilons, check_norm,
                                     generator_for, projected_steps, refuses, step_direction)
from gradreg.attacks.targets import AttackTarget, target_classes
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_labelled, check_real


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps) -> torch.Tensor:
    """Fast gradient sign method: clip(x + ε·sign(∇ₓ CE(y, f(x))), 0, 1), model in eval mode.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)`` (true or predicted).
        eps: L∞ radius in pixel units of [0, 1] images (a number or per-example radii ``(N,)``).
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_labelled(model, x, y)
    check_eps(eps, len(x))
    with eval_mode(model):
        return projected_steps(model, x, y, eps=eps, step=eps, steps=1, norm="linf", targeted=False,
                               random_start=False, generator=None)


def single_step_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilons: Iterable[float],
                      target: AttackTarget | None = None, seed: int | None = None) -> list[torch.Tensor]:
    """FGSM at every ε from one gradient (TGSM toward ``target`` when one is given): the sign direction does not
    depend on ε, so it is computed once (the paper's transfer protocol, PAPER.md §5).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; epsilons: L∞ radii in pixel units.
        target: None (FGSM, away from ``y``), or TGSM's target: a class tensor ``(N,)`` or one of ``TARGETS``.
        seed: seed of ``target="random"``.
    Returns:
        one adversarial batch per ε, each shape of ``x`` and in [0, 1], as ``fgsm`` (``tgsm``) would give it.
    """
    check_labelled(model, x, y)
    eps_list = check_epsilons(epsilons)
    with eval_mode(model):
        toward = y if target is None else target_classes(model, x, y, target, generator=generator_for(seed))
        direction = step_direction(model, x, toward, targeted=target is not None)
    return [apply_direction(x, direction, eps) for eps in eps_list]


def tgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, target: AttackTarget = "next",
         seed: int | None = None) -> torch.Tensor:
    """Targeted gradient sign method: clip(x − ε·sign(∇ₓ CE(t, f(x))), 0, 1) (Kurakin et al. 2016).

    Args:
        eps: L∞ radius in pixel units; target: see ``target_classes`` (default: the paper's (y + 1) mod K).
        seed: seed of ``target="random"``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_labelled(model, x, y)
    check_eps(eps, len(x))
    return _targeted_sign_steps(model, x, y, step=eps, steps=1, target=target, seed=seed)


@refuses(eps="step_size")
def iterated_tgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step_size: Eps = 0.1, steps: int = 10,
                  target: AttackTarget = "next", seed: int | None = None) -> torch.Tensor:
    """The paper's iterated TGSM: ``steps`` TGSM steps of ``step_size``, clipping only. UNBOUNDED: no ε-ball.

    Args:
        step_size: the per-step L∞ size (paper: 0.1); the total change can reach min(1, steps·step_size).
        steps: number of steps (paper's figures: 10); target, seed: as in ``tgsm``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_labelled(model, x, y)
    check_eps(step_size, len(x), name="step_size")
    check_count("steps", steps)
    return _targeted_sign_steps(model, x, y, step=step_size, steps=steps, target=target, seed=seed)


def _targeted_sign_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: Eps, steps: int,
                         target: AttackTarget, seed: int | None) -> torch.Tensor:
    """``steps`` L∞ sign steps of size ``step`` towards the resolved target, clipping only: one step of size ε
    never leaves the ε-ball, so TGSM needs no projection either."""
    with eval_mode(model):
        t = target_classes(model, x, y, target, generator=generator_for(seed))
        return projected_steps(model, x, t, eps=None, step=step, steps=steps, norm="linf", targeted=True,
                               random_start=False, generator=None)


def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 10,
        step_size: float | None = None, norm: Norm = "linf") -> torch.Tensor:
    """Basic iterative method (Kurakin et al. 2016): PGD without random start (and Kurakin et al.'s step).

    Args:
        eps: radius in pixel units; steps: iterations; step_size: defaults to 1.25·ε/steps (Kurakin et al.'s
            total travel of 1.25 ε).
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    _check_pgd(model, x, y, eps=eps, steps=steps, step_size=step_size, norm=norm, restarts=1)
    step = 1.25 * eps / steps if step_size is None else step_size
    return _pgd(model, x, y, eps=eps, steps=steps, step=step, norm=norm, random_start=False, restarts=1, seed=None)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 40,
        step_size: float | None = None, norm: Norm = "linf", random_start: bool = True, restarts: int = 1,
        seed: int | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) in the L∞ or L2 ball of radius ``eps``.

    Args:
        eps: radius in pixel units of [0, 1] images; steps: gradient steps; step_size: defaults to 2.5·ε/steps.
        restarts: random restarts; per example the first restart that misclassifies is kept.
        seed: seed of the random starts (None: drawn from torch's global generator).
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    _check_pgd(model, x, y, eps=eps, steps=steps, step_size=step_size, norm=norm, restarts=restarts)
    step = 2.5 * eps / steps if step_size is None else step_size
    return _pgd(model, x, y, eps=eps, steps=steps, step=step, norm=norm, random_start=random_start,
                restarts=restarts, seed=seed)


def _check_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int,
               step_size: float | None, norm: str, restarts: int) -> None:
    check_labelled(model, x, y)
    check_eps(eps, len(x))
    check_norm(norm)
    check_count("steps", steps)  # before the default step size is computed from it
    check_count("restarts", restarts)
    if step_size is not None:
        check_real("step_size", step_size, low=0.0)


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int, step: Eps, norm: Norm,
         random_start: bool, restarts: int, seed: int | None) -> torch.Tensor:
    generator = generator_for(seed)
    with eval_mode(model):
        best = None
        for _ in range(restarts):
            x_adv = projected_steps(model, x, y, eps=eps, step=step, steps=steps, norm=norm, targeted=False,
                                    random_start=random_start, generator=generator)
            if best is None:
                best = x_adv
                continue
            with torch.no_grad():
                improve = (model(best).argmax(1) == y) & (model(x_adv).argmax(1) != y)
            best = torch.where(improve[:, None, None, None], x_adv, best)
        return best
