"""Faster input gradients: the model copies that the attack loop and the penalties differentiate.

Four rewrites, each exact up to float rounding, applied to weight-sharing copies so the model itself stays a plain
stack of torch layers (Captum hooks it, checkpoints save it):

- A convolution with few input channels (an image's first layer) gets its input gradient from batched matrix
  products and k·k shifted additions (the transposed convolution written out) instead of oneDNN's backward-data
  kernel, which is slow for one input channel (MNIST small_cnn, batch 256, 2 cores: 5 ms against 20 ms alone).
  A plain training step never computes this gradient; every attack step and every penalized step does. When the
  backward is recorded (double backpropagation) the shifted sum is one node whose own backward is a forward
  convolution and a weight gradient, both fast. On a GPU torch's own convolution runs throughout.
- Training-mode BatchNorm gets a backward whose own backward is written out (``_BatchNormBackward``): torch's
  double backward of batch normalization is a composite of about thirty elementwise passes over the activation,
  a third of a ``grad_y`` step on small_cnn; the written-out one takes three fused reductions and three passes.
  CPU only, like the convolution rewrite.
- Max-pooling is moved before the monotone activation it follows (``_pool_first``): the same values at the same
  indices, with the activation on a quarter of the values.
- For gradients of a model in eval mode (attacks), BatchNorm after a convolution or a linear layer is one affine
  map per channel and is folded into that layer's weights and bias (the inference form of Ioffe & Szegedy 2015,
  arXiv 1502.03167, §3.1), and eval-mode Dropout, the identity, is left out. Only flat ``nn.Sequential`` models of
  torch's own layers with no hooks are folded: their order of execution is their order of listing.
"""

from __future__ import annotations

import threading
import weakref

import torch
import torch.nn.functional as F
from torch import nn

SMALL_INPUT = 3  # convolutions with at most this many input channels get the shifted-sum input gradient


class _SmallInputConv(torch.autograd.Function):
    """conv2d (stride 1, no dilation, one group, zero padding) with the shifted-sum input gradient.

    With ``private_leaf`` (the input is a leaf that requires grad, made for one penalized step:
    ``input_gradient_model(..., private_input=True)``) the first backward through this call computes the input
    gradient only, and later ones the weight gradients only: the step takes ∇ₓℓ first (``torch.autograd.grad`` to
    the input), then its own backward, which reaches the leaf too but wants the parameters."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, private_leaf):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias, ctx.private_leaf, ctx.passes = padding, bias is not None, private_leaf, 0
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        if ctx.private_leaf:
            first = ctx.passes == 0
            need_x, need_w, need_b = need_x and first, need_w and not first, need_b and not first
        ctx.passes += 1
        grad_x = grad_w = grad_b = None
        if need_x:  # a recorded backward (double backpropagation) gets a node with its own backward
            grad_x = (_ConvInputGradient.apply(grad_out, weight, x.shape, ctx.padding) if torch.is_grad_enabled()
                      else _input_gradient(grad_out, weight, x.shape, ctx.padding))
        if need_w or need_b:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_out, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], list(ctx.padding),
                [1, 1], False, [0, 0], 1, [False, need_w, need_b])
        return grad_x, grad_w, grad_b, None, None


class _ConvInputGradient(torch.autograd.Function):
    """The input gradient of conv2d as a differentiable function of ``(grad_out, weight)``: the shifted sum forward;
    backward, as the transposed convolution's adjoints, a convolution of the cotangent (to ``grad_out``) and the
    convolution's weight gradient between the cotangent and ``grad_out`` (to ``weight``)."""

    @staticmethod
    def forward(ctx, grad_out, weight, x_shape, padding):
        ctx.save_for_backward(grad_out, weight)
        ctx.padding = padding
        return _input_gradient(grad_out, weight, x_shape, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, cotangent):
        grad_out, weight = ctx.saved_tensors
        need_g, need_w = ctx.needs_input_grad[:2]
        to_grad_out = F.conv2d(cotangent, weight, padding=ctx.padding) if need_g else None
        to_weight = torch.ops.aten.convolution_backward(
            grad_out, cotangent, weight, None, [1, 1], list(ctx.padding), [1, 1], False, [0, 0], 1,
            [False, True, False])[1] if need_w else None
        return to_grad_out, to_weight, None, None


TAPS_BYTES = 4 << 20  # the per-tap products are made for this many bytes of images at a time: fresh large buffers
# cost page faults on every call (20 MB at batch 256 took 10 ms); buffers this size are reused by the allocator


def _input_gradient(grad_out: torch.Tensor, weight: torch.Tensor, x_shape: torch.Size,
                    padding: tuple[int, int]) -> torch.Tensor:
    """∂/∂x of Σ grad_out·conv2d(x, weight): x[b, c, h+i−p, w+j−p] meets weight[:, c, i, j] in output (h, w), so the
    gradient is Σ_{i,j} of the per-tap products z[:, c, i, j] = Σ_o weight[o, c, i, j]·grad_out[:, o], each shifted
    by (i, j) into the padded input and cropped."""
    n, c_out, h_out, w_out = grad_out.shape
    _, c_in, kh, kw = weight.shape
    ph, pw = padding
    per_tap = weight.reshape(c_out, -1).t()  # (C·kh·kw, C_out)
    padded = grad_out.new_zeros(n, c_in, h_out + kh - 1, w_out + kw - 1)  # = (H + 2p, W + 2p)
    chunk = max(1, TAPS_BYTES // (per_tap.shape[0] * h_out * w_out * grad_out.element_size()))
    for start in range(0, n, chunk):
        part = grad_out[start:start + chunk]
        taps = torch.matmul(per_tap, part.reshape(len(part), c_out, h_out * w_out))
        taps = taps.view(len(part), c_in, kh, kw, h_out, w_out)
        target = padded[start:start + chunk]
        for i in range(kh):
            for j in range(kw):
                target[:, :, i:i + h_out, j:j + w_out].add_(taps[:, :, i, j])  # not +=: that copies it back
    return padded[:, :, ph:ph + x_shape[2], pw:pw + x_shape[3]]


def _per_channel(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, *[1] * (like.dim() - 2))


class _BatchNormBackward(torch.autograd.Function):
    """Training-mode batch normalization's backward ``(dy, x, γ) -> (dx, dγ, dβ)`` with its own backward written out.

    Per channel, over its M values, with s = 1/√(σ² + ε), x̂ = (x − μ)·s and P(v) = v − mean(v) − x̂·mean(v·x̂), the
    backward is dx = γ·s·P(dy), dγ = Σ dy·x̂, dβ = Σ dy (Ioffe & Szegedy 2015, arXiv 1502.03167, §3). For a
    cotangent u of dx (derived here; P is symmetric and ∂s/∂x = −s²·x̂/M):

    - to dy: γ·s·P(u), which is batch normalization's backward applied to u;
    - to γ: s·⟨P(u), dy⟩ = s·(Σ u·dy − mean(u)·Σ dy − mean(u·x̂)·Σ dy·x̂);
    - to x: −(γ·s²/M)·(A − M·b·c)·x̂ − (s·C/M)·dx − s·b·(γ·s·P(u)), with A = Σ u·dy − mean(dy)·Σ u, b = mean(dy·x̂),
      C = Σ u·x̂ and c = C/M.

    Cotangents u_γ of dγ and u_β of dβ add u_γ·x̂ + u_β to dy and u_γ·s·P(dy) to x. Every sum is a fused
    ``native_batch_norm_backward`` reduction; tests/test_fastgrad.py checks all of it with gradgradcheck.
    """

    @staticmethod
    def forward(ctx, dy, x, weight, mean, invstd, eps):
        dx, sum_dy_xhat, sum_dy = torch.ops.aten.native_batch_norm_backward(
            dy, x, weight, None, None, mean, invstd, True, eps, [True, True, True])
        ctx.save_for_backward(dy, x, weight, mean, invstd, dx, sum_dy_xhat, sum_dy)
        ctx.eps = eps
        ctx.set_materialize_grads(False)
        return dx, sum_dy_xhat, sum_dy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u, u_weight, u_bias):
        dy, x, weight, mean, invstd, dx, sum_dy_xhat, sum_dy = ctx.saved_tensors
        m, s = x.numel() // x.shape[1], invstd
        to_dy = to_x = to_weight = None
        if u is not None:
            to_dy, sum_u_xhat, sum_u = torch.ops.aten.native_batch_norm_backward(
                u, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True])
            # Σ u·dy: the same reduction with mean 0 and invstd 1 (one fused pass, no temporary)
            sum_u_dy = torch.ops.aten.native_batch_norm_backward(
                u, dy, None, None, None, torch.zeros_like(mean), torch.ones_like(invstd), True, 0.0,
                [False, True, False])[1]
            b, c = sum_dy_xhat / m, sum_u_xhat / m
            to_weight = s * (sum_u_dy - sum_u / m * sum_dy - c * sum_dy_xhat)
            k_x = -(weight * s**3 / m) * (sum_u_dy - sum_dy / m * sum_u - m * b * c)  # on x − μ
            to_x = torch.addcmul(_per_channel(-k_x * mean, x), x, _per_channel(k_x, x))
            to_x.addcmul_(dx, _per_channel(-s * c, x)).addcmul_(to_dy, _per_channel(-s * b, x))
        if u_weight is not None or u_bias is not None:
            xhat = (x - _per_channel(mean, x)) * _per_channel(s, x)
            extra = torch.zeros_like(dy)
            if u_weight is not None:
                extra.addcmul_(xhat, _per_channel(u_weight, x))
                p_dy = dy - _per_channel(sum_dy / m, x) - xhat * _per_channel(sum_dy_xhat / m, x)
                from_weight = p_dy * _per_channel(u_weight * s, x)
                to_x = from_weight if to_x is None else to_x + from_weight
            if u_bias is not None:
                extra.add_(_per_channel(u_bias, x))
            to_dy = extra if to_dy is None else to_dy + extra
        return to_dy, to_x, to_weight, None, None, None


class _BatchNormTrain(torch.autograd.Function):
    """Training-mode batch normalization (batch statistics; running statistics updated in place) whose backward is
    ``_BatchNormBackward``, so double backpropagation differentiates the written-out backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        y, mean, invstd = torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var, True,
                                                           momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, invstd = ctx.saved_tensors
        dx, dweight, dbias = _BatchNormBackward.apply(dy, x, weight, mean, invstd, ctx.eps)
        return dx, dweight, dbias, None, None, None, None


class _TrainBatchNorm:
    """The forward of ``_BatchNorm`` in training mode through ``_BatchNormTrain``; momentum, the cumulative average
    (momentum None) and ``num_batches_tracked`` as torch does them. Other modes, and GPUs (where it has not been
    measured or tested: torch's cuDNN path runs there), defer to torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.weight is None or self.bias is None or x.device.type != "cpu":
            return super().forward(x)
        self._check_input_dim(x)
        if x.numel() // x.shape[1] <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return _BatchNormTrain.apply(x, self.weight, self.bias, *running, factor, self.eps)


class TrainBatchNorm1d(_TrainBatchNorm, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` with the written-out double backward in training mode; the same parameters."""


class TrainBatchNorm2d(_TrainBatchNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with the written-out double backward in training mode; the same parameters."""


_TRAIN_NORMS = {nn.BatchNorm1d: TrainBatchNorm1d, nn.BatchNorm2d: TrainBatchNorm2d}


class SmallInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input gradient is the shifted sum (``_SmallInputConv``); the same parameters.
    ``private_input`` (set on copies): a leaf input's gradient is wanted alone, and from the first backward only."""

    private_input = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.device.type != "cpu":  # unbatched input, or a GPU (cuDNN's gradient is fast): torch's
            return super().forward(x)
        private_leaf = self.private_input and x.requires_grad and x.grad_fn is None
        return _SmallInputConv.apply(x, self.weight, self.bias, self.padding, private_leaf)


def _rewritable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.in_channels <= SMALL_INPUT and conv.groups == 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def _torch_tree(modules: list[nn.Module]) -> bool:
    return all(type(m).__module__.startswith("torch.nn.modules") for m in modules)


def _rewritten_type(module: nn.Module) -> type:
    if _rewritable(module):
        return SmallInputConv2d
    return _TRAIN_NORMS.get(type(module), type(module))


MONOTONE = (nn.ReLU, nn.Softplus)  # non-decreasing elementwise: they commute with max-pooling


def _pool_first(named: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """A ``Sequential``'s children with each monotone activation followed by max-pooling swapped: max-pooling an
    activation equals activating the max-pooled values, picked at the same index, so values and gradients are the
    model's, and the activation and its backward run on a quarter of the values (2×2 pooling)."""
    named = list(named)
    for i in range(len(named) - 1):
        act, pool = named[i][1], named[i + 1][1]
        if (type(act) in MONOTONE and type(pool) is nn.MaxPool2d and not pool.return_indices
                and not _has_hooks([act, pool])):
            named[i], named[i + 1] = named[i + 1], named[i]
    return named


def _shared_copy(module: nn.Module, private_input: bool = False) -> nn.Module:
    """A copy of ``module``'s tree sharing its parameters, buffers and hooks; small-input convolutions and
    BatchNorm rewritten, max-pooling moved before the activation it follows."""
    state = dict(module.__dict__)
    state["_parameters"], state["_buffers"] = dict(module._parameters), dict(module._buffers)
    children = [(k, None if m is None else _shared_copy(m, private_input)) for k, m in module._modules.items()]
    state["_modules"] = dict(_pool_first(children) if type(module) is nn.Sequential else children)
    clone = object.__new__(_rewritten_type(module))
    clone.__dict__.update(state)
    if isinstance(clone, SmallInputConv2d) and private_input:
        clone.private_input = True
    return clone


def input_gradient_model(model: nn.Module, *, private_input: bool = False) -> nn.Module:
    """The model to differentiate with respect to its input while training: a copy sharing every parameter and
    buffer (gradients and BatchNorm's running statistics reach the model) with small-input convolutions and
    BatchNorm rewritten. The model itself when it has neither, or holds modules not from torch (their forward may
    keep state).

    ``private_input``: the caller feeds a leaf made for one step, takes its gradient alone in the first backward
    and the parameters' in later ones (``loss_terms``); a layer that reads the leaf computes only what each pass
    wants."""
    modules = list(model.modules())
    if not _torch_tree(modules) or all(_rewritten_type(m) is type(m) for m in modules):
        return model
    return _shared_copy(model, private_input)


def _has_hooks(modules: list[nn.Module]) -> bool:
    return any(getattr(m, name) for m in modules for name in
               ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def _folded(layer: nn.Module, norm: nn.Module) -> nn.Module:
    """``layer`` followed by eval-mode ``norm`` as one layer with detached weights: y = s·(Wx + b) + (β − s·μ),
    s = γ / √(σ² + ε)."""
    scale = (norm.running_var + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.detach()
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach()
    if layer.bias is not None:
        shift = shift + layer.bias.detach() * scale
    folded = _detached(layer)
    folded._parameters["weight"] = layer.weight.detach() * scale.view(-1, *[1] * (layer.weight.dim() - 1))
    folded._parameters["bias"] = shift
    return folded


def _detached(layer: nn.Module) -> nn.Module:
    clone = object.__new__(SmallInputConv2d if _rewritable(layer) else type(layer))
    clone.__dict__.update(layer.__dict__)
    clone._parameters = {k: None if p is None else p.detach() for k, p in layer._parameters.items()}
    return clone


def _foldable(layer: nn.Module, norm: nn.Module) -> bool:
    pairs = ((nn.Conv2d, nn.BatchNorm2d), (nn.Linear, nn.BatchNorm1d))
    return (any(type(layer) is a and type(norm) is b for a, b in pairs) and not norm.training
            and norm.running_mean is not None and layer.weight.shape[0] == norm.num_features)


def _fold_sequential(model: nn.Sequential) -> nn.Sequential:
    layers, out, i = list(model), [], 0
    while i < len(layers):
        layer, after = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if after is not None and _foldable(layer, after):
            out.append(_folded(layer, after))
            i += 2
            continue
        if not isinstance(layer, nn.Dropout):
            out.append(_detached(layer))
        i += 1
    return nn.Sequential(*(m for _, m in _pool_first([(str(i), m) for i, m in enumerate(out)])))


_FROZEN: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_FROZEN_LOCK = threading.Lock()


def _state_key(model: nn.Module, modules: list[nn.Module]) -> tuple:
    """What the folded copy depends on: every tensor's identity and version, every module's identity and mode."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((id(t), t._version) for t in tensors), tuple((id(m), m.training) for m in modules)


def eval_gradient_model(model: nn.Module) -> nn.Module:
    """The model to take many input gradients of in eval mode (the attack loop): BatchNorm folded, Dropout left out
    and small-input convolutions rewritten, with detached weights (no parameter gradient is ever computed). Cached
    per model until one of its tensors changes (in place or replaced) or a module changes mode. The model itself
    when it is not a flat ``nn.Sequential`` of torch's own layers in eval mode without hooks (then
    ``input_gradient_model``)."""
    modules = list(model.modules())
    if (type(model) is not nn.Sequential or any(m.training for m in modules) or not _torch_tree(modules)
            or _has_hooks(modules) or any(isinstance(m, nn.Sequential) for m in modules[1:])):
        return input_gradient_model(model)
    key = _state_key(model, modules)
    with _FROZEN_LOCK:
        cached = _FROZEN.get(model)
        if cached is not None and cached[0] == key:
            return cached[1]
    folded = _fold_sequential(model)
    with _FROZEN_LOCK:
        _FROZEN[model] = (key, folded)
    return folded
