"""Small image classifiers that return logits; a ``MODELS`` registry, ``build_model`` and ``init_weights``.

``paper_cnn`` is the MNIST network of Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404) as
described in PAPER.md §2; the other CNNs keep its layout with fewer filters or hidden units (the recipe ablation,
``gradreg.paper.ablation``, compares them). Every activation is its own module and nothing is in-place, so Captum's
DeepLift / GuidedBackprop can hook each use.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

BN_EPS = 1e-3  # the authors' TensorFlow default


def make_activation(name: str) -> nn.Module:
    """A fresh activation module (one per use: hooks are attached per module)."""
    activations = {"relu": nn.ReLU, "softplus": nn.Softplus, "gelu": nn.GELU}
    if name not in activations:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(activations))}")
    return activations[name]()


def batch_norm(kind: type[nn.Module], features: int, *, bn_scale: bool) -> nn.Module:
    """``nn.BatchNorm1d``/``2d`` with eps 1e-3; without ``bn_scale`` its γ is a constant buffer of ones and only
    the shift β is learned (TF-slim's ``scale=False``, the authors' BatchNorm). The layer stays torch's own type,
    so the fast-gradient rewrites, Captum and the checkpoints (same state-dict keys) treat both alike."""
    if not isinstance(bn_scale, bool):
        raise ValueError(f"bn_scale must be true or false, got {bn_scale!r}")
    norm = kind(features, eps=BN_EPS)
    if not bn_scale:
        del norm.weight
        norm.register_buffer("weight", torch.ones(features))
    return norm


def conv_net(*, convs: tuple[int, int] = (32, 64), hidden: int = 1024, hidden_norm: bool = True,
             activation: str = "relu", num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
             bn_scale: bool = True) -> nn.Sequential:
    """conv5×5×c₁ → BN → act → pool → conv5×5×c₂ → BN → act → pool → FC ``hidden`` [→ BN] → act [→ dropout 0.5]
    → FC (logits). Convolutions have no bias (BatchNorm's shift makes it redundant, as in the authors' code); the
    hidden layer has BatchNorm and dropout when ``hidden_norm`` (the paper's), a bias otherwise."""
    side, (c1, c2) = image_size // 4, convs
    layers: list[nn.Module] = []
    for c_in, c_out in ((in_channels, c1), (c1, c2)):
        layers += [nn.Conv2d(c_in, c_out, 5, padding=2, bias=False), batch_norm(nn.BatchNorm2d, c_out, bn_scale=bn_scale),
                   make_activation(activation), nn.MaxPool2d(2)]
    layers += [nn.Flatten(), nn.Linear(c2 * side * side, hidden, bias=not hidden_norm)]
    if hidden_norm:
        layers += [batch_norm(nn.BatchNorm1d, hidden, bn_scale=bn_scale), make_activation(activation), nn.Dropout(0.5)]
    else:
        layers.append(make_activation(activation))
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))


def mlp(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
        hidden: int = 256, bn_scale: bool = True) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units (no BatchNorm: ``bn_scale`` has nothing to act on)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        make_activation(activation),
        nn.Linear(hidden, hidden),
        make_activation(activation),
        nn.Linear(hidden, num_classes),
    )


def linear(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
           image_size: int = 28, bn_scale: bool = True) -> nn.Sequential:
    """Multinomial logistic regression (``activation`` and ``bn_scale`` are ignored): gradients have closed forms."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


def _named(name: str, doc: str, **layout) -> Callable[..., nn.Module]:
    builder = partial(conv_net, **layout)
    builder.__name__, builder.__doc__ = name, doc
    return builder


MODELS: dict[str, Callable[..., nn.Module]] = {
    "paper_cnn": _named("paper_cnn", "The authors' MNIST CNN: 32/64 filters, FC 1024 with BatchNorm and dropout "
                        "(≈3.27 M parameters)."),
    "paper_cnn_h256": _named("paper_cnn_h256", "paper_cnn with a 256-unit hidden layer (≈0.86 M).", hidden=256),
    "paper_cnn_h128": _named("paper_cnn_h128", "paper_cnn with a 128-unit hidden layer (≈0.46 M).", hidden=128),
    "paper_cnn_c16": _named("paper_cnn_c16", "paper_cnn with 16/32 filters (≈1.62 M).", convs=(16, 32)),
    "paper_cnn_c16_h256": _named("paper_cnn_c16_h256", "paper_cnn with 16/32 filters and 256 hidden units (≈0.42 M).",
                                 convs=(16, 32), hidden=256),
    "small_cnn": _named("small_cnn", "16/32 filters and a 128-unit hidden layer without BatchNorm or dropout "
                        "(≈0.22 M; the earlier CPU default).", convs=(16, 32), hidden=128, hidden_norm=False),
    "mlp": mlp,
    "linear": linear,
}


# The zoo's network: every narrower variant loses accuracy at λ_eff 110 (gradreg.paper.ablation).
DEFAULT_MODEL = "paper_cnn"


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its builder (``activation``, ``num_classes``, ``bn_scale``…)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
    small = {k: v for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool) and v < 1}
    if small:  # sizes: num_classes, in_channels, image_size…
        raise ValueError(f"model sizes must be integers >= 1, got {small}")
    return MODELS[name](**kwargs)


def _xavier_uniform(model: nn.Module) -> None:
    # Glorot & Bengio 2010: U(±√(6 / (fan_in + fan_out))), fans counting the kernel's taps, as TF-slim's default.
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


INITIALIZERS: dict[str, Callable[[nn.Module], None]] = {"xavier_uniform": _xavier_uniform, "torch": lambda model: None}


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialize ``model``'s convolution and linear layers in place by ``scheme`` (``"torch"`` keeps PyTorch's
    own init); returns the model. Seed torch first for reproducible weights."""
    if scheme not in INITIALIZERS:
        raise ValueError(f"unknown init {scheme!r}; valid: {', '.join(sorted(INITIALIZERS))}")
    with torch.no_grad():
        INITIALIZERS[scheme](model)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
