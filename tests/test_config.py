"""TrainConfig validation, identity and the λ convention."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from gradreg.core.config import TrainConfig, config_id, lam_from_authors


def test_authors_lambda_converts_by_512():
    assert lam_from_authors(56234) == pytest.approx(109.83, abs=0.01)  # PAPER.md §1: MNIST λ_eff ≈ 110
    assert lam_from_authors(512, batch_size=256) == 1.0


@pytest.mark.parametrize("field,value,match", [
    ("lam", -1.0, "lam"), ("lam", math.nan, "lam"), ("lam", math.inf, "lam"),
    ("adv_eps", 1.5, "adv_eps"), ("epochs", 0, "epochs"), ("batch_size", 2.5, "batch_size"),
    ("lr", 0.0, "lr"), ("temperature", -1.0, "temperature"), ("seed", -3, "seed"),
    ("dataset", "cifar", "mnist"), ("model", "resnet", "small_cnn"), ("regularizer", "l2", "grad_y"),
    ("defence", "magic", "fgsm_at"), ("activation", "tanh", "softplus"), ("n_train", 3, "n_train"),
])
def test_bad_values_raise_with_valid_choices(field, value, match):
    extra = {"regularizer": "grad_y"} if field == "lam" else {}
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**extra, field: value})


def test_lambda_without_regularizer_is_refused():
    with pytest.raises(ValueError, match="needs a regularizer"):
        TrainConfig(lam=3.0)


def test_config_id_is_readable_and_stable_across_processes():
    config = TrainConfig(regularizer="grad_y", lam=10.0)
    here = config_id(config)
    assert here.startswith("mnist-small_cnn-grad_y-lam10-none-e3-")
    code = ("from gradreg.core.config import TrainConfig, config_id; "
            "print(config_id(TrainConfig(regularizer='grad_y', lam=10.0)))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_config_id_ignores_device_only():
    base = TrainConfig()
    assert config_id(base) == config_id(TrainConfig(device="cpu"))
    assert config_id(base) != config_id(TrainConfig(seed=1))


def test_round_trip_through_dict():
    config = TrainConfig(regularizer="grad_fd", lam=3.0, defence="fgsm_at")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({**config.to_dict(), "evil": 1})
