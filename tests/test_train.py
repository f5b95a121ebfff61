"""The training loop: every defence lowers its loss, seeds reproduce, stop requests end cleanly."""

from __future__ import annotations

import threading

import pytest
import torch

from gradreg import TrainConfig, train
from gradreg.core.config import DEFENCES
from conftest import TINY_RECIPE

SMALL = {"dataset": "synthetic", "model": "small_cnn", "epochs": 2, "batch_size": 64, "n_train": 300, **TINY_RECIPE}


@pytest.mark.parametrize("defence", DEFENCES)
def test_each_defence_lowers_its_loss(defence):
    ckpt = train(TrainConfig(**SMALL, defence=defence, adv_steps=2))
    for phase in {h["phase"] for h in ckpt.history}:
        losses = [h["loss"] for h in ckpt.history if h["phase"] == phase]
        assert losses[-1] < losses[0], (phase, losses)
    assert ckpt.complete and 0.0 <= ckpt.metrics["test_accuracy"] <= 1.0


@pytest.mark.parametrize("regularizer", ["grad_y", "grad_uniform", "grad_fd"])
def test_regularized_training_records_a_penalty(regularizer):
    ckpt = train(TrainConfig(**SMALL, regularizer=regularizer, lam=1.0))
    assert all(h["penalty"] > 0 for h in ckpt.history)
    assert ckpt.history[-1]["loss"] < ckpt.history[0]["loss"]
    assert ckpt.metrics["test_accuracy"] > 0.5


def test_same_seed_same_weights_other_seed_differs():
    config = TrainConfig(**{**SMALL, "epochs": 1}, regularizer="grad_y", lam=0.5)
    a, b = train(config), train(config)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    c = train(TrainConfig(**{**SMALL, "epochs": 1}, regularizer="grad_y", lam=0.5, seed=1))
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_on_batch_stop_ends_after_that_batch():
    seen = []
    ckpt = train(TrainConfig(**SMALL), on_batch=lambda b, n, m: seen.append(b) or b == 2)
    assert seen == [1, 2] and not ckpt.complete and ckpt.history == []


def test_stop_event_and_on_epoch_stop():
    event = threading.Event()
    event.set()
    assert not train(TrainConfig(**SMALL), stop=event).complete
    ckpt = train(TrainConfig(**SMALL), on_epoch=lambda stats: True)
    assert len(ckpt.history) == 1 and not ckpt.complete


def test_epoch_stats_fields():
    ckpt = train(TrainConfig(**{**SMALL, "epochs": 1}))
    (stats,) = ckpt.history
    assert set(stats) >= {"loss", "ce", "penalty", "train_accuracy", "val_accuracy", "grad_norm", "seconds"}
    assert stats["grad_norm"] > 0 and stats["seconds"] > 0


def test_on_epoch_model_sees_the_trained_model_in_eval_mode_each_epoch():
    seen = []

    def hook(stats, model):
        assert not model.training
        with torch.no_grad():
            seen.append((stats.epoch, {k: v.clone() for k, v in model.state_dict().items()}))

    ckpt = train(TrainConfig(**SMALL), on_epoch_model=hook)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert not all(torch.equal(seen[0][1][k], seen[1][1][k]) for k in ckpt.state_dict)  # weights moved
    assert all(torch.equal(seen[1][1][k], ckpt.state_dict[k]) for k in ckpt.state_dict)  # the returned model
    stopped = train(TrainConfig(**SMALL), on_epoch_model=lambda stats, model: True)
    assert len(stopped.history) == 1 and not stopped.complete
