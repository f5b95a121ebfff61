"""AutoAttack's standard L∞ ensemble: APGD-CE, then APGD-T, then Square, each on the images still classified
correctly, so the result is the worst case over the three per image.

Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", arXiv 2003.01690 (§4); Square: Andriushchenko et al. 2020, arXiv 1912.00049. The gradient-free last
stage is what catches gradient masking.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from gradreg.attacks.apgd import apgd, apgd_targeted
from gradreg.attacks.descent import Eps, check_eps, generator_for, radius_like
from gradreg.attacks.random_search import P_INIT, square_search
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_labelled

STAGES = ("apgd_ce", "apgd_t", "square")  # AutoAttack's standard order


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Eps, *, steps: int, targets: int,
           queries: int) -> None:
    check_eps(eps, len(x))
    for name, value in (("steps", steps), ("targets", targets), ("queries", queries)):
        check_count(name, value)
    k = check_labelled(model, x, y)
    if not 4 <= k or targets > k - 1:
        raise ValueError(f"targets must be at most K - 1 = {k - 1} and APGD-T needs K >= 4 classes; got {targets}")


def _stages(*, steps: int, targets: int, queries: int) -> dict[str, Callable]:
    """Stage name → attack(model, x, y, eps, seed) on a subset of images."""
    def square(model, x, y, eps, seed):
        with eval_mode(model):
            return square_search(model, x, y, radius=radius_like(eps, x), queries=queries, p_init=P_INIT,
                                 generator=generator_for(seed))

    return {"apgd_ce": lambda model, x, y, eps, seed: apgd(model, x, y, eps=eps, steps=steps, seed=seed),
            "apgd_t": lambda model, x, y, eps, seed: apgd_targeted(model, x, y, eps=eps, steps=steps,
                                                                   targets=targets, seed=seed),
            "square": square}


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        return model(x).argmax(1) == y


def _rows(eps: Eps, rows: torch.Tensor) -> Eps:
    return eps[rows] if isinstance(eps, torch.Tensor) else eps


def _run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Eps, stages: dict[str, Callable],
         seed: int | None) -> tuple[torch.Tensor, list[dict]]:
    """(x_adv, one record per stage: its name, the images it attacked, accuracy after it, its seconds)."""
    x_adv, correct, records = x.detach().clone(), _correct(model, x, y), []
    for name, run in stages.items():
        rows, start = correct.nonzero().flatten(), time.perf_counter()
        stage_seed = None if seed is None else seed + STAGES.index(name)  # the same whichever stages run
        if len(rows):
            found = run(model, x[rows], y[rows], _rows(eps, rows), stage_seed)
            fooled = ~_correct(model, found, y[rows])
            x_adv[rows[fooled]], correct[rows[fooled]] = found[fooled], False
        records.append({"attack": name, "attacked": len(rows), "accuracy": int(correct.sum()) / len(x),
                        "seconds": time.perf_counter() - start})
    return x_adv, records


def ensemble(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 100, targets: int = 3,
             queries: int = 5000, seed: int | None = None) -> torch.Tensor:
    """AutoAttack, standard L∞ version (Croce & Hein 2020, arXiv 2003.01690): APGD-CE, APGD-T and Square in
    turn, each on the images every earlier stage left correctly classified.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; eps: L∞ radius in pixel units of [0, 1] images
            (a number or per-example radii ``(N,)``).
        steps: APGD iterations (per target for APGD-T); targets: APGD-T's target classes, 1 to K − 1 (AutoAttack
            uses 9); queries: Square's model evaluations per image; seed: the i-th stage of ``STAGES`` runs
            with seed + i (None: each draws from torch's global generator).
    Returns:
        adversarial images, shape of ``x``, in [0, 1] and in the ε-ball: the first stage's success per image, the
        clean image where none succeeded.
    """
    _check(model, x, y, eps, steps=steps, targets=targets, queries=queries)
    if not bool((radius_like(eps, x) > 0).any()):
        return x.detach().clone()
    return _run(model, x, y, eps, _stages(steps=steps, targets=targets, queries=queries), seed)[0]


def ensemble_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Eps, steps: int = 100,
                    targets: int = 3, queries: int = 5000, seed: int | None = 0, alone: bool = False) -> dict:
    """AutoAttack's robust accuracy stage by stage (Croce & Hein 2020, arXiv 2003.01690).

    Args:
        x, y, eps, steps, targets, queries, seed: as in ``ensemble``.
        alone: also run APGD-T and Square each on every clean-correct image (APGD-CE alone is its stage).
    Returns:
        ``{"n", "eps", "clean_accuracy", "robust_accuracy" (worst case over the ensemble), "seconds",
        "stages"}``; ``stages``: one record per attack in order, ``{"attack", "attacked" (images it ran on), "accuracy"
        (cumulative, after it), "alone" (accuracy under it alone, None when not run), "seconds"}``. Accuracies
        are fractions of all n images, in [0, 1].
    """
    _check(model, x, y, eps, steps=steps, targets=targets, queries=queries)
    if len(x) == 0:
        raise ValueError("the robust accuracy of an empty set is undefined")
    if not isinstance(alone, bool):
        raise ValueError(f"alone must be True or False, got {alone!r}")
    stages = _stages(steps=steps, targets=targets, queries=queries)
    start, clean = time.perf_counter(), int(_correct(model, x, y).sum()) / len(x)
    _, records = _run(model, x, y, eps, stages, seed)
    for i, record in enumerate(records):
        record["alone"] = record["accuracy"] if i == 0 else None
        if alone and i:
            alone_records = _run(model, x, y, eps, {record["attack"]: stages[record["attack"]]}, seed)[1]
            record["alone"] = alone_records[0]["accuracy"]
    return {"n": len(x), "eps": eps.tolist() if isinstance(eps, torch.Tensor) else float(eps),
            "clean_accuracy": clean, "robust_accuracy": records[-1]["accuracy"],
            "seconds": time.perf_counter() - start, "stages": records}
