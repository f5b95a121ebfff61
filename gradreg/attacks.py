"""Adversarial attacks on [0, 1] images: one projected-step loop (foolbox style), an ``ATTACKS`` registry, ``attack``.

FGSM (Goodfellow et al. 2015, arXiv 1412.6572) and TGSM are one L∞ step; iterated TGSM repeats TGSM with no ε-ball
(Ross & Doshi-Velez 2018, arXiv 1711.09404); BIM (Kurakin et al. 2016, arXiv 1607.02533) and PGD (Madry et al. 2018,
arXiv 1706.06083) iterate with projection. JSMA (``gradreg.jsma``), Square (``gradreg.square``), APGD and APGD-T
(``gradreg.apgd``) and AutoAttack's ensemble (``gradreg.ensemble``; Croce & Hein 2020, arXiv 2003.01690) are
registered here.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn

from gradreg.apgd import apgd, apgd_targeted
from gradreg.descent import (Eps, Norm, apply_direction, eval_mode, generator_for, loss_gradient, projected_steps,
                             radius_like, step_direction)
from gradreg.ensemble import ensemble
from gradreg.jsma import saliency_map_attack
from gradreg.square import P_INIT, square_search
from gradreg.validation import check_eps, check_fit, check_inputs, check_real, parameters

__all__ = ["ATTACKS", "AttackSpec", "apgd", "apgd_targeted", "apply_direction", "attack", "bim", "check_eps",
           "check_inputs", "ensemble", "eval_mode", "fgsm", "get_attack", "iterated_tgsm", "jsma", "loss_gradient",
           "pgd", "resolve_target", "square", "step_direction", "tgsm"]

NORMS = ("linf", "l2")
TARGETS = ("next", "random", "least_likely")
Target = Union[str, torch.Tensor]


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_fraction(name: str, value: float, *, low_open: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1
    if bad or (low_open and value == 0):
        raise ValueError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}")


def resolve_target(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: Target, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Target classes ``(N,)`` int64 (K, the number of classes, is read from the logits).

    Args:
        target: a tensor of classes ``(N,)``; ``"next"``: (y + 1) mod K (the paper's choice); ``"random"``: uniform
            over the classes ≠ y; ``"least_likely"``: the model's lowest logit.
    """
    if not isinstance(target, torch.Tensor) and target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid: an (N,) tensor of classes, {', '.join(TARGETS)}")
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    k = logits.shape[1]
    if isinstance(target, torch.Tensor):
        if target.shape != y.shape or target.is_floating_point() or bool(((target < 0) | (target >= k)).any()):
            raise ValueError(f"a target tensor must hold classes in [0, {k}) with shape {tuple(y.shape)}")
        return target.to(y.device, torch.long)
    if target == "next":
        return (y + 1) % k
    if target == "random":
        return (y + torch.randint(1, k, y.shape, generator=generator or generator_for(None)).to(y.device)) % k
    return logits.argmin(1)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps) -> torch.Tensor:
    """Fast gradient sign method: clip(x + ε·sign(∇ₓ CE(y, f(x))), 0, 1), model in eval mode.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)`` (true or predicted).
        eps: L∞ radius in pixel units of [0, 1] images (a number or per-example radii ``(N,)``).
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_inputs(x, y)
    check_eps(eps, len(x))
    check_fit(model, x, y)
    with eval_mode(model):
        return projected_steps(model, x, y, eps=eps, step=eps, steps=1, norm="linf", targeted=False,
                               random_start=False, generator=None)


def tgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, target: Target = "next",
         seed: int | None = None) -> torch.Tensor:
    """Targeted gradient sign method: clip(x − ε·sign(∇ₓ CE(t, f(x))), 0, 1) (Kurakin et al. 2016).

    Args:
        eps: L∞ radius in pixel units; target: see ``resolve_target`` (default: the paper's (y + 1) mod K).
        seed: seed of ``target="random"``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    return _targeted_sign_steps(model, x, y, step=eps, steps=1, target=target, seed=seed)


def iterated_tgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps = 0.1, steps: int = 10,
                  target: Target = "next", seed: int | None = None) -> torch.Tensor:
    """The paper's iterated TGSM: ``steps`` TGSM steps of size ε, clipping only. UNBOUNDED: no ε-ball.

    Args:
        eps: the per-step L∞ size (paper: 0.1), not a radius; the total change can reach min(1, steps·ε).
        steps: number of steps (paper's figures: 10); target, seed: as in ``tgsm``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    return _targeted_sign_steps(model, x, y, step=eps, steps=steps, target=target, seed=seed)


def _targeted_sign_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: Eps, steps: int,
                         target: Target, seed: int | None) -> torch.Tensor:
    """``steps`` L∞ sign steps of size ``step`` towards the resolved target, clipping only: one step of size ε
    never leaves the ε-ball, so TGSM needs no projection either."""
    check_inputs(x, y)
    check_eps(step, len(x))
    _check_count("steps", steps)
    with eval_mode(model):
        t = resolve_target(model, x, y, target, generator=generator_for(seed))
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
    check_inputs(x, y)
    check_eps(eps, len(x))
    _check_count("steps", steps)  # all three before the step size is computed from them
    step = 1.25 * eps / steps if step_size is None else step_size
    return pgd(model, x, y, eps=eps, steps=steps, step_size=step, norm=norm, random_start=False)


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
    check_inputs(x, y)
    check_eps(eps, len(x))
    _check_norm(norm)
    _check_count("steps", steps)
    _check_count("restarts", restarts)
    check_fit(model, x, y)
    if step_size is not None:
        check_real("step_size", step_size, low=0.0)
    step = 2.5 * eps / steps if step_size is None else step_size
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


def jsma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps = 1.0, gamma: float = 0.25,
         target: Target = "next", seed: int | None = None) -> torch.Tensor:
    """JSMA (Papernot et al. 2016, arXiv 1511.07528): pixel pairs picked by the logit-Jacobian saliency map are
    pushed up by θ = ``eps`` until the image is classified as the target (batched; see ``gradreg.jsma``).

    Args:
        eps: θ, the per-pixel increase in pixel units (paper: +1, i.e. saturate); it bounds ‖x' − x‖∞.
        gamma: max fraction of pixels changed, in [0, 1] (paper: 0.25); target, seed: as in ``tgsm``.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    check_inputs(x, y)
    check_eps(eps, len(x))
    _check_fraction("gamma", gamma)
    with eval_mode(model):
        t = resolve_target(model, x, y, target, generator=generator_for(seed))
        return saliency_map_attack(model, x, t, theta=radius_like(eps, x).flatten(), gamma=gamma)


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
    check_inputs(x, y)
    check_eps(eps, len(x))
    _check_count("queries", queries)
    _check_fraction("p_init", p_init, low_open=True)
    with eval_mode(model):
        return square_search(model, x, y, radius=radius_like(eps, x), queries=queries, p_init=p_init,
                             generator=generator_for(seed))


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack and what its ``eps`` means."""

    fn: Callable[..., torch.Tensor]
    norm: str = "linf"  # the norm ε bounds; a ``norm=`` knob overrides it
    targeted: bool = False  # takes ``target`` and succeeds when the prediction equals it
    bounded: bool = True  # False: ε is a per-step size and no ε-ball bounds the change (iterated TGSM)
    single_step: bool = False  # x' = clip(x ± ε·sign ∇) with a direction independent of ε: computed once
    gradient_free: bool = False

    @property
    def params(self) -> dict[str, object]:
        """The attack's own keyword knobs and their defaults (besides ``eps``, ``target`` and ``seed``)."""
        skip = {"model", "x", "y", "eps", "target", "seed"}
        return {name: p.default for name, p in parameters(self.fn).items() if name not in skip}

    @property
    def seeded(self) -> bool:
        return "seed" in parameters(self.fn)


ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(fgsm, single_step=True),
    "tgsm": AttackSpec(tgsm, targeted=True, single_step=True),
    "iterated_tgsm": AttackSpec(iterated_tgsm, targeted=True, bounded=False),
    "bim": AttackSpec(bim),
    "pgd": AttackSpec(pgd),
    "jsma": AttackSpec(jsma, targeted=True),
    "square": AttackSpec(square, gradient_free=True),
    "apgd": AttackSpec(apgd),
    "apgd_t": AttackSpec(apgd_targeted),  # picks its own targets and succeeds on any misclassification
    "ensemble": AttackSpec(ensemble),
}


def get_attack(method: str) -> AttackSpec:
    """The registry entry of ``method``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(method, str) or method not in ATTACKS:
        raise ValueError(f"unknown attack {method!r}; valid: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[method]


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, *, eps: Eps,
           target: Target | None = None, seed: int | None = None, **params) -> torch.Tensor:
    """Run a registered attack: the one call shape of every attack (model mode and parameters untouched).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: true labels ``(N,)``; method: a key of ``ATTACKS``.
        eps: radius in pixel units of the attack's norm (a number or per-example radii ``(N,)``); for
            ``iterated_tgsm`` the per-step size; for ``jsma`` θ.
        target: targeted attacks only: a class tensor ``(N,)`` or one of ``TARGETS`` (default ``"next"``).
        seed: seeds random starts, random targets and Square's search; deterministic attacks ignore it.
        params: the attack's own knobs (``ATTACKS[method].params``), e.g. steps, norm, restarts, gamma, queries.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    spec = get_attack(method)
    check_fit(model, x, y)  # shapes, dtype, labels in [0, K): a ValueError instead of a RuntimeError inside torch
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(f"{method} has no parameter(s) {', '.join(unknown)}; valid: {', '.join(spec.params)}")
    if target is not None and not spec.targeted:
        targeted = ", ".join(sorted(name for name, s in ATTACKS.items() if s.targeted))
        raise ValueError(f"{method} is untargeted and takes no target; targeted attacks: {targeted}")
    if spec.targeted:
        params["target"] = "next" if target is None else target
    if spec.seeded:
        params["seed"] = seed
    return spec.fn(model, x, y, eps=eps, **params)
