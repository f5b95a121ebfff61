"""The ``ATTACKS`` registry (name → ``AttackSpec``: the function and what its ``eps`` means) and ``attack``, the one
call shape of every attack. A family module adds its public function here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from gradreg.attacks.descent import Eps
from gradreg.attacks.gradient import bim, fgsm, iterated_tgsm, pgd, tgsm
from gradreg.attacks.random_search import square
from gradreg.attacks.saliency_map import jsma
from gradreg.attacks.targets import Target
from gradreg.core.validation import check_fit, parameters


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
