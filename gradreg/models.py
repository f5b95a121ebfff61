"""Small image classifiers that return logits; a ``MODELS`` registry and ``build_model``.

``paper_cnn`` is the MNIST network of Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404) as
described in PAPER.md §2. Every activation is its own module and nothing is in-place, so Captum's
DeepLift / GuidedBackprop can hook each use.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

BN_EPS = 1e-3  # the authors' TensorFlow default


def make_activation(name: str) -> nn.Module:
    """A fresh activation module (one per use: hooks are attached per module)."""
    activations = {"relu": nn.ReLU, "softplus": nn.Softplus, "gelu": nn.GELU}
    if name not in activations:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(activations))}")
    return activations[name]()


def _conv_block(c_in: int, c_out: int, activation: str) -> list[nn.Module]:
    # No conv bias: BatchNorm's shift makes it redundant (as in the authors' code).
    return [nn.Conv2d(c_in, c_out, 5, padding=2, bias=False), nn.BatchNorm2d(c_out, eps=BN_EPS),
            make_activation(activation), nn.MaxPool2d(2)]


def paper_cnn(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
              image_size: int = 28) -> nn.Sequential:
    """conv5×5×32 → BN → act → pool → conv5×5×64 → BN → act → pool → FC1024 → BN → act → dropout → FC (≈3.27 M)."""
    side = image_size // 4
    return nn.Sequential(
        *_conv_block(in_channels, 32, activation),
        *_conv_block(32, 64, activation),
        nn.Flatten(),
        nn.Linear(64 * side * side, 1024, bias=False),
        nn.BatchNorm1d(1024, eps=BN_EPS),
        make_activation(activation),
        nn.Dropout(0.5),
        nn.Linear(1024, num_classes),
    )


def small_cnn(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
              image_size: int = 28) -> nn.Sequential:
    """The fast CPU default: the paper's layout with 16/32 filters and a 128-unit hidden layer (≈0.22 M)."""
    side = image_size // 4
    return nn.Sequential(
        *_conv_block(in_channels, 16, activation),
        *_conv_block(16, 32, activation),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128),
        make_activation(activation),
        nn.Linear(128, num_classes),
    )


def mlp(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
        hidden: int = 256) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        make_activation(activation),
        nn.Linear(hidden, hidden),
        make_activation(activation),
        nn.Linear(hidden, num_classes),
    )


def linear(*, activation: str = "relu", num_classes: int = 10, in_channels: int = 1,
           image_size: int = 28) -> nn.Sequential:
    """Multinomial logistic regression (``activation`` is ignored): gradients have closed forms."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "paper_cnn": paper_cnn,
    "small_cnn": small_cnn,
    "mlp": mlp,
    "linear": linear,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its builder (``activation``, ``num_classes``…)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
    small = {k: v for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool) and v < 1}
    if small:  # sizes: num_classes, in_channels, image_size…
        raise ValueError(f"model sizes must be integers >= 1, got {small}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
