"""Shared fixtures: analytic models with fixed weights, synthetic data, a tiny trained checkpoint."""

from __future__ import annotations

import pytest
import torch

from gradreg import TrainConfig, load_dataset, save, train
from gradreg.models import build_model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic():
    """(x, y) test split of the synthetic dataset: (200, 1, 28, 28) in [0, 1], 10 classes."""
    return load_dataset("synthetic", "test").tensors


@pytest.fixture
def linear_model():
    """Multinomial logistic regression on 28×28 images with fixed random weights, eval mode.

    ∇ₓ CE(y) = Wᵀ(softmax(z) − onehot(y)) in closed form."""
    model = build_model("linear")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(10, 784, generator=generator) * 0.05)
        model[1].bias.copy_(torch.randn(10, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt_dir(tmp_path_factory):
    """A directory holding one small_cnn trained for one epoch on synthetic data (accuracy well above chance)."""
    root = tmp_path_factory.mktemp("checkpoints")
    save(train(TrainConfig(dataset="synthetic", model="small_cnn", epochs=1, batch_size=64)), root)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt_dir):
    """The tiny trained small_cnn, eval mode, frozen parameters (like a model shared by the app)."""
    from gradreg.checkpoints import list_checkpoints, load

    (info,) = list_checkpoints(tiny_ckpt_dir)
    return load(info.path).build(frozen=True)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A zoo of five small_cnn models on synthetic data (plain, grad_y at λ 0.1/1/10, FGSM-AT) with their cards."""
    from gradreg.zoo import build_zoo, zoo_configs

    root = tmp_path_factory.mktemp("tiny_zoo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 8× faster than 2 threads on a loaded 2-core machine
    try:
        configs = zoo_configs("synthetic", epochs=1, n_train=200, lams=(0.1, 1.0, 10.0))
        build_zoo({k: c for k, c in configs.items() if k in ("plain", "grad_y_0.1", "grad_y_1", "grad_y_10",
                                                              "fgsm_at")}, out=root, n_eval=32)
    finally:
        torch.set_num_threads(threads)
    return root
