"""Faster input gradients: the model copies that the attack loop and the penalties differentiate.

Four rewrites, each exact up to float rounding, applied to weight-sharing copies so the model itself stays a plain
stack of torch layers (Captum hooks it, checkpoints save it):

- A convolution with few input channels (an image's first layer) gets its input gradient by shifted sums
  (``gradreg.fastgrad.conv_input_gradient``).
- Training-mode BatchNorm gets a backward whose own backward is written out (``gradreg.fastgrad.batchnorm_train``).
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

from torch import nn

from gradreg.core.modules import tree_copy
from gradreg.fastgrad.batchnorm_train import TRAIN_NORMS
from gradreg.fastgrad.conv_input_gradient import SmallInputConv2d, shifted_sum_applies


def _torch_tree(modules: list[nn.Module]) -> bool:
    return all(type(m).__module__.startswith("torch.nn.modules") for m in modules)


def _rewritten_type(module: nn.Module) -> type:
    if shifted_sum_applies(module):
        return SmallInputConv2d
    return TRAIN_NORMS.get(type(module), type(module))


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
    """A copy of ``module``'s tree sharing its parameters, buffers and hooks (``tree_copy``); small-input
    convolutions and BatchNorm rewritten, max-pooling moved before the activation it follows."""
    def rewrite(original: nn.Module, state: dict) -> type:
        state["_parameters"], state["_buffers"] = dict(original._parameters), dict(original._buffers)
        if type(original) is nn.Sequential:
            state["_modules"] = dict(_pool_first(state["_modules"].items()))
        new_type = _rewritten_type(original)
        if issubclass(new_type, SmallInputConv2d) and private_input:
            state["private_input"] = True
        return new_type

    return tree_copy(module, rewrite)


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
    clone = object.__new__(SmallInputConv2d if shifted_sum_applies(layer) else type(layer))
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
