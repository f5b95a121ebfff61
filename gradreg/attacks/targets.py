"""Target classes of targeted attacks: the paper's (y + 1) mod K, a random other class, the least likely class, or
classes given as a tensor. (Saliency's ``target``, the class a map explains, is ``gradreg.explain.saliency``'s.)
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn

from gradreg.attacks.descent import generator_for
from gradreg.core.modules import eval_mode

TARGETS = ("next", "least_likely", "random")
AttackTarget = Union[str, torch.Tensor]  # one of TARGETS, or classes (N,)


def target_classes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: AttackTarget, *,
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
