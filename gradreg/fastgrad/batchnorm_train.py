"""Training-mode BatchNorm whose backward has its own backward written out (``TrainBatchNorm1d``/``2d``).

torch's double backward of batch normalization (Ioffe & Szegedy 2015, arXiv 1502.03167) is a composite of about
thirty elementwise passes over the activation, a third of a ``grad_y`` step on small_cnn; the written-out one takes
three fused reductions and three passes. CPU only, like the convolution rewrite: on a GPU torch's own kernels run.
"""

from __future__ import annotations

import torch
from torch import nn


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


TRAIN_NORMS = {nn.BatchNorm1d: TrainBatchNorm1d, nn.BatchNorm2d: TrainBatchNorm2d}
