"""The first layer's input gradient as batched matrix products and k·k shifted additions (``SmallInputConv2d``).

oneDNN's backward-data kernel is slow for one input channel (MNIST small_cnn, batch 256, 2 cores: 5 ms against 20 ms
for the shifted sum). A plain training step never computes this gradient; every attack step and every penalized
step does. When the backward is recorded (double backpropagation) the shifted sum is one node whose own backward is
a forward convolution and a weight gradient, both fast. On a GPU torch's own convolution runs throughout.
"""

from __future__ import annotations

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


class SmallInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input gradient is the shifted sum (``_SmallInputConv``); the same parameters.
    ``private_input`` (set on copies): a leaf input's gradient is wanted alone, and from the first backward only."""

    private_input = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.device.type != "cpu":  # unbatched input, or a GPU (cuDNN's gradient is fast): torch's
            return super().forward(x)
        private_leaf = self.private_input and x.requires_grad and x.grad_fn is None
        return _SmallInputConv.apply(x, self.weight, self.bias, self.padding, private_leaf)


def shifted_sum_applies(conv: nn.Module) -> bool:
    """Whether ``SmallInputConv2d`` computes ``conv`` exactly: a plain few-channel, stride-1, zero-padded conv2d."""
    return (type(conv) is nn.Conv2d and conv.in_channels <= SMALL_INPUT and conv.groups == 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))
