"""Input-gradient penalties: closed forms, an independent per-example loop, and differentiability."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gradreg.core.data import load_dataset
from gradreg.core.models import build_model
from gradreg.training.regularizers import REGULARIZERS, loss_terms, penalty


def _linear_grads(model, x, y):
    """Closed forms on a linear softmax model: ∇ₓCE(y) = Wᵀ(p − onehot(y)); ∇ₓ uniform-CE = Wᵀ(p − 1/K)."""
    w = model[1].weight
    p = F.softmax(model(x), dim=1)
    grad_y = (p - F.one_hot(y, 10).float()) @ w
    grad_uniform = (p - 1.0 / 10) @ w
    return grad_y, grad_uniform


def test_grad_y_matches_closed_form(linear_model, synthetic):
    x, y = synthetic[0][:32], synthetic[1][:32]
    expected, _ = _linear_grads(linear_model, x, y)
    got = penalty(linear_model, x, y, regularizer="grad_y")
    assert torch.allclose(got, expected.pow(2).sum(1).mean(), rtol=1e-5)


def test_grad_uniform_matches_closed_form(linear_model, synthetic):
    x, y = synthetic[0][:32], synthetic[1][:32]
    _, expected = _linear_grads(linear_model, x, y)
    got = penalty(linear_model, x, y, regularizer="grad_uniform")
    assert torch.allclose(got, expected.pow(2).sum(1).mean(), rtol=1e-5)


def test_grad_uniform_ignores_labels(linear_model, synthetic):
    x, y = synthetic[0][:16], synthetic[1][:16]
    a = penalty(linear_model, x, y, regularizer="grad_uniform")
    b = penalty(linear_model, x, (y + 3) % 10, regularizer="grad_uniform")
    assert torch.equal(a, b)


def test_grad_y_matches_per_example_loop_on_cnn(synthetic):
    model = build_model("small_cnn").eval()  # eval: BatchNorm does not couple the examples
    x, y = synthetic[0][:8], synthetic[1][:8]
    norms = []
    for i in range(len(x)):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xi), y[i : i + 1]), xi)
        norms.append(g.pow(2).sum())
    assert torch.allclose(penalty(model, x, y, regularizer="grad_y"), torch.stack(norms).mean(), rtol=1e-4)


def test_grad_fd_value_and_gradient_are_close_to_double_backprops_on_a_smooth_model(synthetic):
    """grad_fd's value estimates grad_y's (within 3 %); its parameter gradient, the exact gradient of that estimate,
    is close to double backpropagation's (cosine > 0.99, norm within 5 %)."""
    torch.manual_seed(3)
    model = build_model("mlp", activation="softplus").train()
    x, y = synthetic[0][:64], synthetic[1][:64]

    def value_and_grad(name):
        model.zero_grad(set_to_none=True)
        value = penalty(model, x, y, regularizer=name)
        value.backward()
        return value.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    (exact, g_exact), (approx, g_fd) = value_and_grad("grad_y"), value_and_grad("grad_fd")
    assert approx == pytest.approx(exact, rel=0.03)
    assert F.cosine_similarity(g_exact, g_fd, dim=0) > 0.99
    assert abs(g_fd.norm() / g_exact.norm() - 1) < 0.05


def test_grad_fd_training_keeps_the_gradient_norm_down_on_a_relu_cnn():
    """40 Adam steps at λ 10 on MNIST with the ReLU/max-pool CNN: the true mean ‖∇ₓℓ‖² ends below where it started.
    (An estimator whose parameter gradient was not the gradient of its penalty drove it to 2 000 in 50 steps.)"""
    torch.manual_seed(0)
    model = build_model("small_cnn").train()
    x, y = load_dataset("mnist", "train", n=40 * 64).tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def true_penalty():
        return penalty(model, x[:512], y[:512], regularizer="grad_y").item()

    start = true_penalty()
    for i in range(40):
        optimizer.zero_grad()
        terms = loss_terms(model, x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64], regularizer="grad_fd", lam=10.0)
        terms.loss.backward()
        optimizer.step()
        assert math.isfinite(terms.loss.item())
    assert true_penalty() < start


def test_grad_fd_loss_gradient_is_ce_plus_lam_times_penalty_gradient(synthetic):
    """The clean forward pass is shared; its CE gradient still reaches the weights unchanged."""
    torch.manual_seed(4)
    model = build_model("mlp", activation="softplus").train()
    x, y = synthetic[0][:32], synthetic[1][:32]

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    total = grads(loss_terms(model, x, y, regularizer="grad_fd", lam=0.5).loss)
    ce = grads(F.cross_entropy(model(x), y))
    pen = grads(penalty(model, x, y, regularizer="grad_fd"))
    assert torch.allclose(total, ce + 0.5 * pen, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_lam_zero_is_plain_cross_entropy(name, linear_model, synthetic):
    x, y = synthetic[0][:32], synthetic[1][:32]
    terms = loss_terms(linear_model, x, y, regularizer=name, lam=0.0)
    assert torch.allclose(terms.loss, F.cross_entropy(linear_model(x), y))


@pytest.mark.parametrize("name", sorted(set(REGULARIZERS) - {"none"}))
def test_penalty_is_nonnegative_and_backpropagates(name, synthetic):
    model = build_model("small_cnn").train()
    x, y = synthetic[0][:16], synthetic[1][:16]
    value = penalty(model, x, y, regularizer=name)
    assert value.item() > 0
    value.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # proves create_graph=True reached the weights


def test_loss_adds_lam_times_penalty(linear_model, synthetic):
    x, y = synthetic[0][:32], synthetic[1][:32]
    terms = loss_terms(linear_model, x, y, regularizer="grad_y", lam=7.0)
    assert torch.allclose(terms.loss, terms.ce + 7.0 * terms.penalty)


def test_soft_targets_and_temperature(linear_model, synthetic):
    x, y = synthetic[0][:8], synthetic[1][:8]
    soft = F.one_hot(y, 10).float()
    hard = loss_terms(linear_model, x, y, regularizer="grad_y", lam=1.0)
    as_soft = loss_terms(linear_model, x, soft, regularizer="grad_y", lam=1.0)
    assert torch.allclose(hard.loss, as_soft.loss, rtol=1e-5)
    hot = loss_terms(linear_model, x, y, regularizer="none", lam=0.0, temperature=50.0)
    assert torch.allclose(hot.ce, F.cross_entropy(linear_model(x) / 50.0, y))


def test_unknown_regularizer_lists_valid_names(linear_model, synthetic):
    with pytest.raises(ValueError, match="grad_y"):
        penalty(linear_model, *[t[:2] for t in synthetic], regularizer="grad_z")
