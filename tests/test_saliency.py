"""Saliency: closed forms on the linear model, Captum invariants, side effects and thread safety."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import nn

from gradreg.core.models import build_model
from gradreg.explain.saliency import HOOKED_METHODS, SALIENCY_METHODS, resolve_target, saliency

METHODS = sorted(SALIENCY_METHODS)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum warns about hooks / requires_grad


@pytest.fixture
def batch(synthetic):
    x, y = synthetic
    return x[:4].clone(), y[:4].clone()


def _closed_form(model, x):
    W, b = model[1].weight.detach(), model[1].bias.detach()  # (K, D), (K,)
    p = F.softmax(x.flatten(1) @ W.T + b, 1)  # (N, K)
    return W, p


@pytest.mark.parametrize("method", METHODS, ids=METHODS)
def test_every_method_returns_the_shape_of_x(tiny_model, batch, method):
    x, y = batch
    a = saliency(tiny_model, x, "true", method, y=y)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert a.abs().sum() > 0


@pytest.mark.parametrize("method", METHODS, ids=METHODS)
def test_batch_invariance(tiny_model, batch, method):
    x, y = batch
    together = saliency(tiny_model, x, y, method)
    alone = torch.cat([saliency(tiny_model, x[i : i + 1], y[i : i + 1], method) for i in range(len(x))])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-4)


def test_input_gradient_matches_closed_form(linear_model, batch):
    x, y = batch
    W, p = _closed_form(linear_model, x)
    expected = (W[y] - p @ W).view_as(x)  # ∇ₓ log p_t = W[t] − Σ_k p_k W[k], signed
    torch.testing.assert_close(saliency(linear_model, x, "true", "input_gradient", y=y), expected, atol=1e-6, rtol=1e-5)


def test_loss_gradient_matches_closed_form(linear_model, batch):
    x, y = batch
    W, p = _closed_form(linear_model, x)
    expected = ((p - F.one_hot(y, 10).float()) @ W).view_as(x)  # Wᵀ(p − onehot(y))
    torch.testing.assert_close(saliency(linear_model, x, "true", "loss_gradient", y=y), expected, atol=1e-6, rtol=1e-5)


def test_sum_log_prob_gradient_matches_closed_form(linear_model, batch):
    x, _ = batch
    W, p = _closed_form(linear_model, x)
    expected = (W.sum(0) - 10 * p @ W).view_as(x)  # Σ_k (W[k] − Σ_j p_j W[j])
    torch.testing.assert_close(saliency(linear_model, x, 0, "sum_log_prob_gradient"), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient", "deeplift"])
def test_logit_methods_equal_x_times_weight_on_linear_model(linear_model, batch, method):
    x, y = batch
    expected = x * linear_model[1].weight.detach()[y].view_as(x)  # exact for a linear logit, zero baseline
    torch.testing.assert_close(saliency(linear_model, x, y, method), expected, atol=1e-6, rtol=1e-4)


def test_integrated_gradients_completeness_within_captums_delta(tiny_model, batch):
    x, y = batch
    a = saliency(tiny_model, x, y, "integrated_gradients", steps=32)
    reference, delta = IntegratedGradients(tiny_model).attribute(x.clone(), baselines=0.0, target=y, n_steps=32,
                                                                 return_convergence_delta=True)
    torch.testing.assert_close(a, reference, atol=1e-6, rtol=1e-4)
    with torch.no_grad():
        gap = (tiny_model(x) - tiny_model(torch.zeros_like(x))).gather(1, y[:, None])[:, 0]
    assert ((a.flatten(1).sum(1) - gap).abs() <= delta.abs() + 1e-5).all()


def test_targets_pred_true_int_and_tensor_agree(tiny_model, batch):
    x, y = batch
    pred = resolve_target(tiny_model, x, "pred")
    torch.testing.assert_close(saliency(tiny_model, x, "pred"), saliency(tiny_model, x, pred))
    torch.testing.assert_close(saliency(tiny_model, x, "true", y=y), saliency(tiny_model, x, y))
    torch.testing.assert_close(saliency(tiny_model, x, 3), saliency(tiny_model, x, torch.full((4,), 3)))


@pytest.mark.parametrize("target", ["label", "true", 10, -1, 2.0, torch.zeros(3, dtype=torch.long),
                                    torch.zeros(4)], ids=["unknown", "true-without-y", "too-big", "negative",
                                                           "float", "wrong-length", "float-tensor"])
def test_invalid_targets_raise_listing_the_choices(linear_model, batch, target):
    with pytest.raises(ValueError, match="target"):
        saliency(linear_model, batch[0], target)


def test_many_targets_are_range_checked_in_one_pass(linear_model):
    x = torch.rand(70, 1, 28, 28)
    t = torch.arange(70) % 10
    assert torch.equal(resolve_target(linear_model, x, t), t)
    t[65] = 10
    with pytest.raises(ValueError, match="out of range"):
        resolve_target(linear_model, x, t)


def test_model_device_finds_a_parameter_below_parameterless_modules():
    from gradreg.core.modules import model_device

    assert model_device(nn.Sequential(nn.Flatten(), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))) == torch.device("cpu")
    assert model_device(nn.Sequential(nn.Flatten())) == torch.device("cpu")
    meta = nn.Sequential(nn.Identity(), nn.Linear(2, 2, device="meta"))
    assert model_device(meta) == torch.device("meta")


def test_unknown_method_lists_the_valid_ones(linear_model, batch):
    with pytest.raises(ValueError, match="integrated_gradients"):
        saliency(linear_model, batch[0], "pred", "lrp")


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_gradcam_refuses_models_without_conv_layers(batch, name):
    with pytest.raises(ValueError, match="Conv2d"):
        saliency(build_model(name).eval(), batch[0], "pred", "gradcam")


@pytest.mark.parametrize("method", METHODS, ids=METHODS)
def test_no_side_effects_on_x_gradients_or_mode(batch, method):
    x, _ = batch
    model = build_model("small_cnn").train()  # trainable and in training mode: the harder case
    x_before, state_before = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    saliency(model, x, "pred", method)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters()) and x.grad is None and not x.requires_grad
    assert torch.equal(x, x_before)
    assert all(torch.equal(v, state_before[k]) for k, v in model.state_dict().items())  # BN stats untouched


def test_smoothgrad_is_seeded_and_leaves_the_global_rng_alone(tiny_model, batch):
    x, _ = batch
    rng = torch.get_rng_state()
    first = saliency(tiny_model, x, "pred", "smoothgrad", seed=1, samples=4)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.testing.assert_close(first, saliency(tiny_model, x, "pred", "smoothgrad", seed=1, samples=4))
    assert not torch.allclose(first, saliency(tiny_model, x, "pred", "smoothgrad", seed=2, samples=4))


def _hooks_left(model: nn.Module) -> list[str]:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    left = [f"{name}.{attr}" for name, m in model.named_modules() for attr in names if getattr(m, attr)]
    left += [f"{name}.{attr}" for name, m in model.named_modules() for attr in ("input", "output", "input_ref")
             if attr in m.__dict__]  # DeepLift's per-module attributes
    return left + [g for g in ("_global_forward_hooks", "_global_backward_hooks")
                   if getattr(nn.modules.module, g)]


def test_sixteen_threads_on_one_shared_model_match_a_lone_run(tiny_model, batch):
    x, y = batch
    methods = sorted(HOOKED_METHODS) + ["input_gradient", "smoothgrad"]
    lone = {m: saliency(tiny_model, x, y, m) for m in methods}
    barrier, results, errors = threading.Barrier(16), {}, []

    def work(i: int) -> None:
        method = methods[i % len(methods)]
        try:
            barrier.wait()
            results[i] = (method, saliency(tiny_model, x, y, method))
        except Exception as err:  # collected and re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 16
    for method, a in results.values():
        torch.testing.assert_close(a, lone[method], atol=1e-6, rtol=1e-4)
    assert _hooks_left(tiny_model) == []
    assert not tiny_model.training and not any(p.requires_grad or p.grad is not None for p in tiny_model.parameters())


def test_hooked_methods_reuse_private_copies_that_follow_the_model(batch, monkeypatch):
    from gradreg.explain import saliency as module

    torch.manual_seed(0)
    model = build_model("small_cnn").eval()
    x, _ = batch
    made = []
    real_copy = module._tree_copy
    monkeypatch.setattr(module, "_tree_copy", lambda m: made.append(m is model) or real_copy(m))
    first = saliency(model, x, 0, "guided_backprop")
    assert torch.equal(saliency(model, x, 0, "guided_backprop"), first)
    assert sum(made) == 1  # the second call reused the first call's copy
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())
    with torch.no_grad():  # a weight replaced, not written in place: the pooled copy must see it
        model[0].weight = nn.Parameter(model[0].weight * -1.0)
    replaced = saliency(model, x, 0, "guided_backprop")
    assert not torch.allclose(replaced, first)
    model[2] = nn.Softplus()  # a new module in the tree: a new copy
    saliency(model, x, 0, "guided_backprop")
    assert sum(made) == 2


def test_a_copy_whose_call_raised_is_not_reused(batch, monkeypatch):
    from gradreg.explain import saliency as module

    model = build_model("small_cnn").eval()
    x, _ = batch
    broken = {"raise": True}
    real = module.SALIENCY_METHODS["gradcam"]

    def flaky(model, x, target, **params):
        if broken["raise"]:
            model[0].register_forward_hook(lambda *a: None)  # a hook left behind by a failed call
            raise RuntimeError("boom")
        return real(model, x, target, **params)

    monkeypatch.setitem(module.SALIENCY_METHODS, "gradcam", flaky)
    with pytest.raises(RuntimeError):
        saliency(model, x, 0, "gradcam")
    broken["raise"] = False
    seen = []
    real_copy = module._tree_copy
    monkeypatch.setattr(module, "_tree_copy", lambda m: seen.append(m is model) or real_copy(m))
    saliency(model, x, 0, "gradcam")
    assert sum(seen) == 1  # the failed call's hooked copy was dropped, a fresh one was made
