"""The authors' training recipe (PAPER.md §2–3): Xavier-uniform init, BatchNorm without a learned scale, Adam ε 1e-4;
PyTorch's defaults stay selectable, and checkpoints saved before the recipe existed load as what they were."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from gradreg import TrainConfig, train
from gradreg.core.config import RECIPES, config_id, with_recipe
from gradreg.core.models import MODELS, build_model, init_weights
from gradreg.training.checkpoints import FORMAT_VERSION, load
from gradreg.training.loop import _model_kwargs

SMALL = {"dataset": "synthetic", "model": "paper_cnn_c16_h256", "epochs": 1, "batch_size": 64, "n_train": 200}
# A config as the shipped zoo stored it before the recipe fields existed, with the id it was saved under.
LEGACY = {"dataset": "mnist", "model": "small_cnn", "activation": "relu", "regularizer": "none", "lam": 0.0,
          "defence": "none", "adv_eps": 0.3, "adv_steps": 7, "temperature": 50.0, "epochs": 2, "batch_size": 128,
          "lr": 0.001, "lr_schedule": "cosine", "seed": 0, "n_train": 30000, "device": "auto"}
LEGACY_ID = "mnist-small_cnn-none-none-e2-a3710f7e"


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_the_default_recipe_is_the_authors():
    config = TrainConfig(model="paper_cnn")
    assert (config.init, config.bn_scale, config.adam_eps) == ("xavier_uniform", False, 1e-4)
    assert config.recipe == "authors" and with_recipe(config, "torch").recipe == "torch"
    assert TrainConfig(model="paper_cnn", adam_eps=1e-8).recipe == "custom"


def test_a_fresh_paper_cnn_has_no_trainable_batchnorm_scale():
    model = build_model("paper_cnn", **_model_kwargs(TrainConfig(model="paper_cnn"), {
        "train": (torch.zeros(2, 1, 28, 28), torch.tensor([0, 9])), "val": (None, torch.tensor([1]))}))
    norms = _norms(model)
    assert len(norms) == 3
    for norm in norms:
        assert "weight" not in dict(norm.named_parameters()) and norm.bias.requires_grad  # β learned, γ not
        assert torch.equal(norm.weight, torch.ones(norm.num_features))
    assert sum(p.numel() for p in model.parameters()) == 3_275_754 - (32 + 64 + 1024)
    torch_model = build_model("paper_cnn", bn_scale=True)
    assert all("weight" in dict(n.named_parameters()) for n in _norms(torch_model))
    assert model.state_dict().keys() == torch_model.state_dict().keys()  # one checkpoint layout for both


def test_training_leaves_the_constant_scale_at_one():
    ckpt = train(TrainConfig(**SMALL, regularizer="grad_y", lam=10.0))
    model = ckpt.build()
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in _norms(model))
    assert any(not torch.equal(n.bias, torch.zeros_like(n.bias)) for n in _norms(model))


@pytest.mark.parametrize("name", ["paper_cnn", "paper_cnn_c16_h256", "small_cnn"])
def test_xavier_init_matches_glorots_bound(name):
    torch.manual_seed(0)
    model = init_weights(build_model(name), "xavier_uniform")
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            w = layer.weight
            fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio 2010
            assert w.abs().max() <= bound
            if w.numel() >= 5000:
                assert w.abs().max() > 0.99 * bound and w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
            assert layer.bias is None or not layer.bias.any()


def test_torch_init_keeps_pytorchs_own():
    torch.manual_seed(0)
    a = build_model("small_cnn")
    torch.manual_seed(0)
    b = init_weights(build_model("small_cnn"), "torch")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="xavier_uniform"):
        init_weights(a, "he")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_optimizer_gets_the_recipes_adam_eps(recipe, monkeypatch):
    seen = []

    class Spy(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            seen.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    train(with_recipe(TrainConfig(**SMALL), recipe))
    assert seen and seen[0]["eps"] == RECIPES[recipe]["adam_eps"]


def test_recipe_fields_are_validated():
    with pytest.raises(ValueError, match="xavier_uniform"):
        TrainConfig(init="kaiming")
    with pytest.raises(ValueError, match="bn_scale"):
        TrainConfig(bn_scale="yes")
    with pytest.raises(ValueError, match="adam_eps"):
        TrainConfig(adam_eps=0.0)
    with pytest.raises(ValueError, match="authors"):
        with_recipe(TrainConfig(), "keras")


def test_the_recipe_is_part_of_the_id_and_legacy_ids_are_kept():
    legacy = TrainConfig.from_dict(LEGACY)
    assert legacy.recipe == "torch" and config_id(legacy) == LEGACY_ID
    assert config_id(with_recipe(legacy, "authors")) != LEGACY_ID
    assert TrainConfig.from_dict(with_recipe(legacy, "authors").to_dict()).recipe == "authors"


def test_an_old_checkpoint_loads_and_says_it_used_pytorchs_defaults(tmp_path):
    model = build_model("small_cnn")
    kwargs = {"activation": "relu", "num_classes": 10, "in_channels": 1, "image_size": 28}  # no bn_scale then
    meta = {"format_version": FORMAT_VERSION, "config": LEGACY, "model_kwargs": kwargs, "history": [],
            "metrics": {"test_accuracy": 0.1}, "complete": True, "train_seconds": 1.0}
    path = tmp_path / f"{LEGACY_ID}.safetensors"
    path.write_bytes(st_save(model.state_dict(), metadata={"gradreg": json.dumps(meta)}))
    ckpt = load(path)
    assert ckpt.id == LEGACY_ID and ckpt.config.recipe == "torch" and ckpt.config.bn_scale
    rebuilt = ckpt.build()
    assert all("weight" in dict(n.named_parameters()) for n in _norms(rebuilt))  # its learned γ, as trained
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(rebuilt(x), model.eval()(x))


def test_every_registered_cnn_builds_without_a_scale():
    for name in MODELS:
        model = build_model(name, bn_scale=False)
        assert all("weight" not in dict(n.named_parameters()) for n in _norms(model))
