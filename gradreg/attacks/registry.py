"""The ``ATTACKS`` registry (name → ``AttackSpec``: the public function and what its knobs mean) and ``attack``, the
one call shape of every attack. A new family adds its public function here; the parametrized tests pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from gradreg.attacks.apgd import apgd, apgd_targeted
from gradreg.attacks.descent import Eps
from gradreg.attacks.ensemble import ensemble
from gradreg.attacks.gradient import bim, fgsm, iterated_tgsm, pgd, tgsm
from gradreg.attacks.random_search import square
from gradreg.attacks.saliency_map import jsma
from gradreg.attacks.targets import AttackTarget
from gradreg.core.validation import parameters

SIZES = {"eps": "a radius", "step_size": "the per-step size", "theta": "the per-pixel increase θ"}


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its public function and what its knobs mean."""

    fn: Callable[..., torch.Tensor]
    size: str = "eps"  # the knob that says how far it goes: a key of SIZES (eps: the radius of an ε-ball)
    norm: str = "linf"  # the norm its size bounds; a ``norm=`` knob overrides it
    targeted: bool = False  # takes ``target`` and succeeds when the prediction equals it
    bounded: bool = True  # its size bounds ‖x' − x‖ in ``norm``; False: iterated TGSM, whose steps add up
    single_step: bool = False  # x' = clip(x ± ε·sign ∇) with a direction independent of ε (``single_step_sweep``)
    gradient_free: bool = False

    @property
    def params(self) -> dict[str, object]:
        """The attack's own keyword knobs and their defaults (besides ``eps``, ``target`` and ``seed``; a size other
        than ``eps``, e.g. iterated TGSM's ``step_size``, is one of them)."""
        skip = {"model", "x", "y", "eps", "target", "seed"}
        return {name: p.default for name, p in parameters(self.fn).items() if name not in skip}

    @property
    def seeded(self) -> bool:
        return "seed" in parameters(self.fn)


ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(fgsm, single_step=True),
    "tgsm": AttackSpec(tgsm, targeted=True, single_step=True),
    "iterated_tgsm": AttackSpec(iterated_tgsm, size="step_size", targeted=True, bounded=False),
    "bim": AttackSpec(bim),
    "pgd": AttackSpec(pgd),
    "jsma": AttackSpec(jsma, size="theta", targeted=True),
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


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, *, eps: Eps | None = None,
           target: AttackTarget | None = None, seed: int | None = None, **params) -> torch.Tensor:
    """Run a registered attack: the one call shape of every attack (model mode and parameters untouched).

    The call is dispatched here and validated once, by the attack's own public function.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: true labels ``(N,)``; method: a key of ``ATTACKS``.
        eps: the radius in pixel units of the attack's norm (a number or per-example radii ``(N,)``), for the
            attacks whose ``ATTACKS[method].size`` is ``eps``; the others refuse it and take their own size knob
            (iterated TGSM ``step_size=``, JSMA ``theta=``) among ``params``.
        target: targeted attacks only: a class tensor ``(N,)`` or one of ``TARGETS`` (default ``"next"``).
        seed: seeds random starts, random targets and Square's search; deterministic attacks ignore it.
        params: the attack's own knobs (``ATTACKS[method].params``), e.g. steps, norm, restarts, gamma, queries.
    Returns:
        adversarial images, shape of ``x``, in [0, 1].
    """
    spec = get_attack(method)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(f"{method} has no parameter(s) {', '.join(unknown)}; valid: {', '.join(spec.params)}")
    if spec.size != "eps" and eps is not None:
        raise ValueError(f"{method} takes {spec.size}= ({SIZES[spec.size]}), not eps=: it has no ε-ball")
    if target is not None and not spec.targeted:
        targeted = ", ".join(sorted(name for name, s in ATTACKS.items() if s.targeted))
        raise ValueError(f"{method} is untargeted and takes no target; targeted attacks: {targeted}")
    if spec.size == "eps":
        params["eps"] = eps
    if spec.targeted:
        params["target"] = "next" if target is None else target
    if spec.seeded:
        params["seed"] = seed
    return spec.fn(model, x, y, **params)


def sized(method: str, size: Eps) -> dict[str, Eps]:
    """``{knob: size}`` for ``method``'s size knob (``eps``, ``step_size`` or ``theta``): how sweeps over an
    attack's size (``robust_accuracy``, transfer matrices, the dashboard's slider) name it."""
    return {get_attack(method).size: size}
