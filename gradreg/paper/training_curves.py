"""Transferred-FGSM accuracy during training, the experiment behind the paper's training-curve figure.

Ross & Doshi-Velez 2018 (arXiv 1711.09404), PAPER.md §5–6: FGSM examples at ε = 0.2 are crafted once on a fixed,
fully trained Normal model and shown to models while they train; the paper reports that a Normal model's accuracy
on them peaks early and then declines, while a Grad Reg model's does not. Here the models are retrained from scratch
with the zoo's configs (another seed, so the retrained Normal model is not the source) and evaluated after every
epoch through ``train(on_epoch_model=…)``.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from gradreg.attacks import single_step_sweep
from gradreg.core.config import TrainConfig
from gradreg.core.modules import model_device
from gradreg.evaluation.accuracy import accuracy
from gradreg.training.loop import EpochStats, train


def curve_config(config: TrainConfig, *, epochs: int, n_train: int | None, seed: int) -> TrainConfig:
    """``config`` retrained for the curve: ``epochs`` epochs on ``n_train`` images, constant learning rate (the
    paper's protocol; a cosine schedule would flatten the late part of the curve), and its own ``seed``."""
    return TrainConfig(**{**config.to_dict(), "epochs": epochs, "n_train": n_train, "seed": seed,
                          "lr_schedule": "constant"})


def transfer_during_training(configs: Mapping[str, TrainConfig], source: nn.Module, x: torch.Tensor,
                             y: torch.Tensor, *, eps: float = 0.2) -> list[dict]:
    """Train each config from scratch; after every epoch, score clean and transferred-FGSM accuracy on ``x``, ``y``.

    Args:
        configs: role → config to train (e.g. ``{"plain": …, "grad_y": …}``).
        source: the fixed model the FGSM examples are crafted on (a trained Normal model).
    Returns:
        ``[{"model", "epoch", "eps", "clean", "transfer_fgsm", "val_accuracy", "grad_norm"}]``, one per role and epoch.
    """
    (x_adv,) = single_step_sweep(source, x, y, epsilons=[eps])  # FGSM on the fixed source, once
    records = []
    for role, config in configs.items():
        def score(stats: EpochStats, model: nn.Module, role: str = role) -> None:
            if stats.phase == "teacher":
                return
            device = model_device(model)
            records.append({"model": role, "epoch": stats.epoch, "eps": eps,
                            "clean": accuracy(model, x.to(device), y.to(device)),
                            "transfer_fgsm": accuracy(model, x_adv.to(device), y.to(device)),
                            "val_accuracy": stats.val_accuracy, "grad_norm": stats.grad_norm})

        train(config, on_epoch_model=score)
    return records
