"""The morphs lesson: the paper's iterated-TGSM grids (original class × target class) read by an independent judge
model, whose target-class rate stands in for the paper's human study (Ross & Doshi-Velez 2018, arXiv 1711.09404,
§§4, 7 as restated in PAPER.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from gradreg.core.validation import check_labelled
from gradreg.evaluation.accuracy import judge_target_rate, predict
from gradreg.paper.experiments import class_examples, grid_records, iterated_grid


def morph_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 10, step_size: float = 0.1,
               judge: nn.Module | None = None) -> dict:
    """The paper's iterated-TGSM grid (PAPER.md §4, §7): the first image of each class pushed toward every class.

    Args:
        x, y: test images ``(N, C, H, W)`` and labels holding every class 0 … K−1; steps, step_size: TGSM
            steps of that size.
    Returns:
        ``{"grid": (K, K, C, H, W) numpy (row = original class, column = target), "classes", "model_pred",
        "judge_pred" ((K, K) lists; judge_pred None without a judge), "model_target_rate",
        "judge_target_rate" (off-diagonal cells, ``experiments.grid_records``)}``.
    """
    check_labelled(model, x, y)
    k = int(y.max()) + 1
    if set(y.tolist()) != set(range(k)):
        absent = sorted(set(range(k)) - set(y.tolist()))
        raise ValueError(f"the images must hold every class 0 … {k - 1}; missing {absent}")
    xc, yc = class_examples(x, y, k)
    grid = iterated_grid(model, xc, yc, steps=steps, step_size=step_size)  # (K, K, C, H, W)
    cells = grid.flatten(0, 1)
    record = grid_records({"model": grid}, {"model": model}, judge)[0]
    return {"grid": grid.numpy(), "classes": yc.tolist(), "model_pred": predict(model, cells).view(k, k).tolist(),
            "judge_pred": None if judge is None else predict(judge, cells).view(k, k).tolist(),
            "model_target_rate": record["model_target_rate"], "judge_target_rate": record.get("judge_target_rate")}


def judge_rates(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 10,
                step_size: float = 0.1, seed: int | None = 0) -> dict:
    """``evaluate.judge_target_rate`` of iterated TGSM toward (y + 1) mod K on ``x`` (PAPER.md §7's stand-in for
    the human study): ``{"model_target_rate", "judge_target_rate", "judge_true_rate", "n", ...}``."""
    return judge_target_rate(model, judge, x, y, method="iterated_tgsm", step_size=step_size, steps=steps, seed=seed)


def morph_row(name: str, grid: Mapping, rates: Mapping | None) -> dict:
    """One table row: the grid's target rates (crafting model, judge) and ``judge_rates`` over many images."""
    rates = rates or {}
    return {"model": name, "grid: model says target": grid["model_target_rate"],
            "grid: judge says target": grid["judge_target_rate"],
            "images: model says target": rates.get("model_target_rate"),
            "images: judge says target": rates.get("judge_target_rate"),
            "images: judge says original": rates.get("judge_true_rate"), "images": rates.get("n")}
