"""Shared fixtures: analytic models with fixed weights, synthetic data, a tiny trained checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gradreg import TrainConfig, load_dataset, save, train
from gradreg.core.config import RECIPES
from gradreg.core.models import build_model

ROOT = Path(__file__).resolve().parent.parent
# The quick test network learns the synthetic set in one epoch with PyTorch's init; the authors' recipe (the
# default, for paper_cnn) has its own tests in test_recipe.py.
TINY_RECIPE = RECIPES["torch"]
TINY_ZOO = {"preset": "cpu", "model": "small_cnn", "recipe": "torch", "epochs": 1, "n_train": 200}
# No background warm-up in the test process: the first AppTest run would start a thread loading whichever zoo that
# test points at while later tests run. tests/test_warm.py and the browser tests' servers switch it on.
os.environ["GRADREG_WARM_START"] = "0"


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
    save(train(TrainConfig(dataset="synthetic", model="small_cnn", epochs=1, batch_size=64, **TINY_RECIPE)), root)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt_dir):
    """The tiny trained small_cnn, eval mode, frozen parameters (like a model shared by the app)."""
    from gradreg.training.checkpoints import list_checkpoints, load

    (info,) = list_checkpoints(tiny_ckpt_dir)
    return load(info.path).build(frozen=True)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A zoo of six small_cnn models on synthetic data (plain, grad_y at λ 0.1/1/10/110, FGSM-AT) with their cards
    (λ 110 is the authors' choice, which the presets and the λ explorer's mark name)."""
    from gradreg.paper.zoo import zoo_configs
    from gradreg.paper.zoo_build import build_zoo

    root = tmp_path_factory.mktemp("tiny_zoo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 8× faster than 2 threads on a loaded 2-core machine
    try:
        configs = zoo_configs("synthetic", **TINY_ZOO, lams=(0.1, 1.0, 10.0, 110.0))
        build_zoo({k: c for k, c in configs.items() if k in ("plain", "grad_y_0.1", "grad_y_1", "grad_y_10",
                                                              "grad_y_110", "fgsm_at")}, out=root, n_eval=32)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    """app.py (``ui.use_threads``) sets one intra-op thread for the app's process; give the rest of the test run its
    default back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def app(monkeypatch, tiny_zoo, tmp_path):
    """AppTest of ``app.py`` on the tiny zoo, with a per-test user checkpoint directory."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("GRADREG_SWEEP_DIR", str(tmp_path / "sweeps"))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
