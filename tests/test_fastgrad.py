"""The model copies the attack loop and the penalties differentiate give the model's own gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks.descent import loss_gradient
from gradreg.core.models import build_model
from gradreg.fastgrad.batchnorm_train import TrainBatchNorm1d, TrainBatchNorm2d, _BatchNormTrain
from gradreg.fastgrad.conv_input_gradient import SmallInputConv2d, _SmallInputConv
from gradreg.fastgrad.copies import eval_gradient_model, input_gradient_model
from gradreg.training import regularizers
from gradreg.training.regularizers import loss_terms


def _with_running_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return model


@pytest.mark.parametrize("c_in,kernel,padding", [(1, 5, 2), (1, 3, 0), (3, 3, 1), (2, (5, 3), (1, 2))])
def test_shifted_sum_input_gradient_passes_gradcheck_and_gradgradcheck(c_in, kernel, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = torch.rand(2, c_in, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, c_in, kh, kw, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _SmallInputConv.apply(x, w, b, (ph, pw), False)  # noqa: E731
    assert torch.allclose(fn(x, w, b), F.conv2d(x, w, b, padding=(ph, pw)))
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_rewrite_applies_only_to_convolutions_it_computes_exactly():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3), nn.Conv2d(1, 4, 3, stride=2),
                          nn.Conv2d(2, 4, 3, padding="same"))
    copy = input_gradient_model(model)
    assert [type(m) for m in copy] == [SmallInputConv2d, nn.Conv2d, nn.Conv2d, nn.Conv2d]
    assert all(a is b for a, b in zip(copy.parameters(), model.parameters()))
    assert type(model[0]) is nn.Conv2d  # the model itself is untouched


@pytest.mark.parametrize("name", ["small_cnn", "paper_cnn"])
@pytest.mark.parametrize("regularizer", ["grad_y", "grad_uniform", "grad_fd"])
def test_penalty_through_the_rewritten_model_gives_the_models_own_parameter_gradients(name, regularizer,
                                                                                     monkeypatch):
    """The fast copy (shifted-sum first layer, written-out BatchNorm double backward, pooling before the activation,
    the private input's gradient taken once) against torch's own layers: gradients, values, running statistics."""
    torch.manual_seed(0)
    model = _with_running_stats(build_model(name).double(), seed=1).train()
    x, y = torch.rand(8, 1, 28, 28, dtype=torch.float64), torch.arange(8) % 10
    x[:, :, :6] = 0.0  # a blank border like MNIST's: equal values in a pooling window (ties)

    def step():
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad(set_to_none=True)
        terms = loss_terms(model, x, y, regularizer=regularizer, lam=10.0)
        terms.loss.backward()
        state = [t.clone() for t in model.buffers()]
        with torch.no_grad():  # back to the statistics the step started from
            _with_running_stats(model, seed=1)
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.num_batches_tracked.zero_()
        return [p.grad.clone() for p in model.parameters()], state, terms.penalty.detach()

    fast = step()
    copy = input_gradient_model(model)
    assert {SmallInputConv2d, TrainBatchNorm2d} <= {type(m) for m in copy.modules()}
    monkeypatch.setattr(regularizers, "input_gradient_model", lambda m, **_: m)  # torch's own layers throughout
    reference = step()
    for a, b in zip([*fast[0], *fast[1], fast[2]], [*reference[0], *reference[1], reference[2]]):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (7, 4), (5, 2, 9)])
def test_written_out_batch_norm_double_backward_passes_gradgradcheck(shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape[1], dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _BatchNormTrain.apply(x, w, b, None, None, 0.1, 1e-3)  # noqa: E731
    assert torch.allclose(fn(x, w, b), F.batch_norm(x, None, None, w, b, True, 0.1, 1e-3))
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))  # every cotangent of (dx, dγ, dβ)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_training_batch_norm_keeps_torchs_running_statistics_and_errors(momentum):
    torch.manual_seed(0)
    ours, theirs = TrainBatchNorm1d(5, momentum=momentum), nn.BatchNorm1d(5, momentum=momentum)
    for _ in range(3):
        x = torch.randn(16, 5) * 3 + 1
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    for a, b in zip(ours.buffers(), theirs.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(torch.randn(1, 5))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        ours(torch.randn(4, 5, 2, 2))
    ours.eval()
    assert torch.allclose(ours(x), theirs.eval()(x), atol=1e-6)  # eval mode: torch's own forward


def test_pooling_moves_before_monotone_activations_only():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3), nn.GELU(),
                          nn.MaxPool2d(2), nn.Softplus(), nn.MaxPool2d(2))
    kinds = [type(m) for m in input_gradient_model(model)]
    assert kinds == [SmallInputConv2d, nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.GELU, nn.MaxPool2d, nn.MaxPool2d,
                     nn.Softplus]
    handle = model[1].register_forward_hook(lambda m, i, o: o)  # a hook sees the unpooled activation: no swap
    try:
        assert [type(m) for m in input_gradient_model(model)][1:3] == [nn.ReLU, nn.MaxPool2d]
    finally:
        handle.remove()
    x = torch.randn(3, 1, 22, 22, dtype=torch.float64, requires_grad=True)
    model.double()
    ours, theirs = input_gradient_model(model)(x), model(x)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-15)  # Softplus may round differently once swapped
    (g_ours,), (g_theirs,) = (torch.autograd.grad(out.pow(2).sum(), x) for out in (ours, theirs))
    assert torch.allclose(g_ours, g_theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["small_cnn", "paper_cnn", "mlp"])
def test_folded_eval_model_gives_the_models_input_gradient(name):
    torch.manual_seed(0)
    model = _with_running_stats(build_model(name).double()).eval()
    x, y = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.arange(6)
    fast = eval_gradient_model(model)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in fast.modules())
    assert torch.allclose(loss_gradient(fast, x, y), loss_gradient(model, x, y), rtol=1e-9, atol=1e-12)
    assert torch.allclose(fast(x), model(x), rtol=1e-9, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_folded_model_is_cached_until_a_weight_or_a_statistic_changes():
    model = _with_running_stats(build_model("small_cnn")).eval()
    x = torch.rand(4, 1, 28, 28)
    first = eval_gradient_model(model)
    assert eval_gradient_model(model) is first
    with torch.no_grad():
        model[0].weight.mul_(2.0)  # in place, as an optimizer step or load_state_dict writes
    second = eval_gradient_model(model)
    assert second is not first and torch.allclose(second(x), model(x), atol=1e-5)
    model[1].running_var.add_(1.0)
    third = eval_gradient_model(model)
    assert third is not second and torch.allclose(third(x), model(x), atol=1e-5)


def test_models_that_cannot_be_folded_are_differentiated_as_they_are():
    model = build_model("small_cnn").eval()
    in_training = eval_gradient_model(model.train())  # batch statistics: not folded
    assert isinstance(in_training[1], nn.BatchNorm2d) and in_training[1].running_var is model[1].running_var
    model.eval()
    handle = model[2].register_forward_hook(lambda m, i, o: o * 2)  # a hook that changes the output
    try:
        kept = eval_gradient_model(model)
        assert any(isinstance(m, nn.BatchNorm2d) for m in kept.modules())
        assert torch.equal(kept(torch.ones(1, 1, 28, 28)), model(torch.ones(1, 1, 28, 28)))
    finally:
        handle.remove()

    class Wrapper(nn.Module):  # not torch's own: its forward may keep state
        def __init__(self):
            super().__init__()
            self.net, self.calls = build_model("small_cnn").eval(), 0

        def forward(self, x):
            self.calls += 1
            return self.net(x)

    wrapper = Wrapper().eval()
    assert eval_gradient_model(wrapper) is wrapper
