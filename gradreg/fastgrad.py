"""Faster input gradients: the model copies that the attack loop and ``grad_fd`` differentiate.

Two rewrites, each exact up to float rounding, applied to weight-sharing copies so the model itself stays a plain
stack of torch layers (Captum hooks it, checkpoints save it):

- A convolution with few input channels (an image's first layer) gets its input gradient from batched matrix
  products and k·k shifted additions (the transposed convolution written out) instead of oneDNN's backward-data
  kernel, which is slow for one input channel (MNIST small_cnn, batch 256, 2 cores: 3.5 ms against 12 ms alone,
  about 8 ms against 13 ms inside a step). A plain training step never computes this gradient; every attack step
  and every ``grad_fd`` step does. When the backward itself is recorded (double backpropagation) torch's own
  differentiable convolution backward runs instead, and on a GPU torch's own convolution runs throughout.
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
    """conv2d (stride 1, no dilation, one group, zero padding) with the shifted-sum input gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # double backpropagation records this backward: torch's own, differentiable
            grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_out, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], list(ctx.padding),
                [1, 1], False, [0, 0], 1, [need_x, need_w, need_b and ctx.has_bias])
            return grad_x, grad_w, grad_b, None
        grad_x = _input_gradient(grad_out, weight, x.shape, ctx.padding) if need_x else None
        grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, padding=ctx.padding) if need_w else None
        grad_b = grad_out.sum((0, 2, 3)) if ctx.has_bias and need_b else None
        return grad_x, grad_w, grad_b, None


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


class SmallInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input gradient is the shifted sum (``_SmallInputConv``); the same parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.device.type != "cpu":  # unbatched input, or a GPU (cuDNN's gradient is fast): torch's
            return super().forward(x)
        return _SmallInputConv.apply(x, self.weight, self.bias, self.padding)


def _rewritable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.in_channels <= SMALL_INPUT and conv.groups == 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def _torch_tree(modules: list[nn.Module]) -> bool:
    return all(type(m).__module__.startswith("torch.nn.modules") for m in modules)


def _shared_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree sharing its parameters, buffers and hooks; small-input convolutions rewritten."""
    state = dict(module.__dict__)
    state["_parameters"], state["_buffers"] = dict(module._parameters), dict(module._buffers)
    state["_modules"] = {k: None if m is None else _shared_copy(m) for k, m in module._modules.items()}
    clone = object.__new__(SmallInputConv2d if _rewritable(module) else type(module))
    clone.__dict__.update(state)
    return clone


def input_gradient_model(model: nn.Module) -> nn.Module:
    """The model to differentiate with respect to its input while training: a copy sharing every parameter and
    buffer (gradients and BatchNorm's running statistics reach the model) with small-input convolutions rewritten.
    The model itself when it has none, or holds modules not from torch (their forward may keep state)."""
    modules = list(model.modules())
    if not _torch_tree(modules) or not any(_rewritable(m) for m in modules):
        return model
    return _shared_copy(model)


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
    return nn.Sequential(*out)


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
