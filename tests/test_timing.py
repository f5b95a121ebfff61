"""Training-time estimates calibrated on this machine: a probe of real steps, checked against real runs."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from gradreg.core.config import TrainConfig
from gradreg.training import timing
from gradreg.training.loop import N_GRAD_NORM, estimate_seconds, train

COSTS = timing.StepCosts(train=2e-3, teacher=1e-3, predict=1e-4, grad_norm=5e-4, load=0.25, n_train=55000,
                         n_val=5000, n_test=10000, device="cpu (1 thread)")


@pytest.fixture
def one_thread():
    """As in the app (``ui.use_threads``): one intra-op thread; the probe measures the thread count it runs with."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_estimate_adds_up_what_train_spends():
    config = TrainConfig(dataset="mnist", regularizer="grad_y", lam=10.0, epochs=2, n_train=1000)
    validation = 5000 * 1e-4 + N_GRAD_NORM * 5e-4
    expected = 3 * 0.25 + 2 * (1000 * 2e-3 + validation) + 10000 * 1e-4
    assert timing.estimate(config, COSTS) == pytest.approx(expected)
    everything = replace(config, n_train=None)
    assert timing.estimate(everything, COSTS) == pytest.approx(expected + 2 * 54000 * 2e-3)
    distilled = replace(config, regularizer="none", lam=0.0, defence="distill")
    teacher_phase = 2 * (1000 * 1e-3 + validation) + 1000 * 1e-4  # and its soft labels for the student
    assert timing.estimate(distilled, COSTS) == pytest.approx(expected + teacher_phase)


def test_configs_of_equal_cost_share_one_probe():
    a = TrainConfig(regularizer="grad_y", lam=10.0, epochs=3, seed=1, n_train=5000, lr=2e-4)
    b = TrainConfig(regularizer="grad_y", lam=300.0, epochs=9, seed=7, n_train=200)
    assert timing.cost_config(a) == timing.cost_config(b)
    assert timing.cost_config(a) != timing.cost_config(replace(b, defence="fgsm_at"))
    assert timing.cost_config(replace(b, n_train=50)).n_train == 50, "a set smaller than a batch: smaller steps"
    with pytest.raises(TypeError, match="TrainConfig"):
        timing.cost_config({"model": "small_cnn"})
    with pytest.raises(ValueError, match="budget"):
        timing.probe(TrainConfig(dataset="synthetic"), budget=0)


def test_the_probe_is_short_and_leaves_nothing_behind(one_thread, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path))
    config = TrainConfig(dataset="synthetic", model="small_cnn", regularizer="grad_y", lam=10.0, defence="distill")
    rng = torch.get_rng_state()
    start = time.perf_counter()
    costs = timing.probe(config)
    assert time.perf_counter() - start < 5, "a probe costs about a second, not a training run"
    assert torch.equal(torch.get_rng_state(), rng), "the global random state is restored"
    assert torch.get_num_threads() == 1 and costs.device == "cpu (1 thread)"
    assert list(tmp_path.iterdir()) == [], "nothing is written"
    assert costs.train > 0 and costs.teacher > 0 and costs.predict > 0 and costs.grad_norm > 0 and costs.load > 0
    assert (costs.n_train, costs.n_val, costs.n_test) == (540, 60, 200), "the synthetic set's splits"


def _check_against_a_real_run(config: TrainConfig) -> None:
    """The estimate from a probe is within a factor 1.5 of the run it predicts, measured right after it. On a
    shared machine another process can slow one of the two: one retry, with a fresh probe."""
    ratios = []
    for _ in range(2):
        predicted = timing.measured_seconds(config)
        start = time.perf_counter()
        ckpt = train(config)
        ratios.append((time.perf_counter() - start) / predicted)
        assert ckpt.complete
        if 1 / 1.5 <= ratios[-1] <= 1.5:
            return
    raise AssertionError(f"real / estimated time: {ratios}")


def test_the_estimate_matches_a_real_short_run(one_thread):
    _check_against_a_real_run(TrainConfig(dataset="synthetic", model="small_cnn", regularizer="grad_y", lam=10.0,
                                          epochs=2, batch_size=64))


@pytest.mark.slow
def test_the_estimate_matches_a_real_mnist_run_with_its_evaluations(one_thread):
    """One epoch on 500 MNIST images: validation (5 000 images) and the test (10 000) are most of it, which the fixed
    table ignored (the app's runs took ~3.5× its estimate)."""
    _check_against_a_real_run(TrainConfig(dataset="mnist", model="small_cnn", regularizer="grad_y", lam=10.0,
                                          epochs=1, n_train=500))


def test_the_train_page_caps_and_shows_the_measured_estimate(app, monkeypatch):
    """The cap and the promise use the probe: a machine measured slow refuses what the fixed table allowed."""
    import streamlit as st

    st.cache_data.clear()  # probes cached by earlier tests
    slow = replace(COSTS, train=0.1, n_train=540, n_val=60, n_test=200)  # 100 ms per training image
    monkeypatch.setattr(timing, "probe", lambda config, **kw: slow)
    app.run()
    app.switch_page("pages/train.py").run()
    app.selectbox(key="train.dataset").set_value("synthetic")
    app.number_input(key="train.epochs").set_value(20)
    app.button[0].click().run()
    assert not app.exception
    (error,) = app.error
    assert "timed on this machine: 100 ms per training image" in error.value and "limit is 10 min" in error.value
    config = TrainConfig(dataset="synthetic", model="paper_cnn", regularizer="grad_y", lam=110.0, epochs=1,
                         n_train=100)
    refused = replace(config, epochs=20, n_train=10000)  # the form's default of 10 000 images: all 540 there are
    assert timing.estimate(refused, slow) > 600 > timing.estimate(config, slow)
    assert estimate_seconds(refused) < 600, "the fixed table would have let it run"
    app.number_input(key="train.epochs").set_value(1)
    app.number_input(key="train.n_train").set_value(100)
    app.button[0].click().run()
    assert not app.exception and not app.error
    started = next(i.value for i in app.info if i.value.startswith("Started"))
    assert f"about {timing.estimate(config, slow):.0f} s" in started, started
    deadline = time.monotonic() + 60
    while not app.success and time.monotonic() < deadline:
        time.sleep(0.3)
        app.run()
    assert any("Test accuracy" in s.value for s in app.success)
    assert any(f"of about {timing.estimate(config, slow):.0f} s" in p.proto.text for p in app.get("progress"))
