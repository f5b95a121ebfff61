"""Training configuration: one frozen dataclass that names a model completely.

The λ convention follows Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404) as restated in
PAPER.md §1: ``lam`` is λ_eff, the weight on the *per-example mean* of ‖∇ₓℓ‖², independent of batch size.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

DEFENCES = ("none", "fgsm_at", "pgd_at", "distill")
# The penalties' names; ``gradreg.training.regularizers.REGULARIZERS`` maps each to its function, so a config is
# validated here without the base importing the training package.
REGULARIZER_NAMES = ("none", "grad_y", "grad_uniform", "grad_fd")
ACTIVATIONS = ("relu", "softplus", "gelu")
INITS = ("xavier_uniform", "torch")
# The training recipe: weight init, BatchNorm's learned scale γ and Adam's ε (PAPER.md §2–3). "authors" is what the
# authors' TensorFlow code does (TF-slim: Glorot-uniform weights, zero biases, BatchNorm scale=False, Adam epsilon
# 1e-4); "torch" is PyTorch's defaults. At λ_eff 110 the difference is 99.3 % against 85 % clean on paper_cnn.
RECIPES = {
    "authors": {"init": "xavier_uniform", "bn_scale": False, "adam_eps": 1e-4},
    "torch": {"init": "torch", "bn_scale": True, "adam_eps": 1e-8},
}
LEGACY_RECIPE = "torch"  # what every config saved before these fields existed was trained with
DEVICES = ("auto", "cpu", "cuda", "mps")
LR_SCHEDULES = ("constant", "cosine")


def lam_from_authors(lam_tf: float, *, batch_size: int = 256) -> float:
    """Convert the authors' TensorFlow λ to λ_eff.

    Their code adds λ_TF · ½‖∂(batch-mean CE)/∂X‖²_F; since ∂(mean CE)/∂x_n = ∇ℓ_n / B this equals
    λ_TF / (2B) · mean_n ‖∇ℓ_n‖², i.e. λ_eff = λ_TF / 512 at their batch size of 256 (PAPER.md §1).

    Args:
        lam_tf: the authors' λ (e.g. 56234 for MNIST).
        batch_size: the batch size it was used with.
    Returns:
        λ_eff, the weight on the per-example mean squared input-gradient norm.
    """
    if not (math.isfinite(lam_tf) and lam_tf >= 0):
        raise ValueError(f"lam_tf must be a finite number >= 0, got {lam_tf!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return lam_tf / (2 * batch_size)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; saved inside its checkpoint.

    ``lam`` is λ_eff: loss = mean CE + lam · mean_n ‖∇ₓℓ_n‖² (PAPER.md §1). "Both defences" in the paper is
    ``regularizer="grad_y", defence="fgsm_at"``.
    """

    dataset: str = "mnist"
    model: str = "small_cnn"
    activation: str = "relu"
    init: str = "xavier_uniform"  # weights Glorot/Xavier-uniform, biases 0 (the authors'); "torch": PyTorch's own
    bn_scale: bool = False  # a learned BatchNorm scale γ; the authors' has none (γ ≡ 1, only the shift β is learned)
    regularizer: str = "none"
    lam: float = 0.0  # λ_eff (per-example mean convention); authors' MNIST choice ≈ 110
    defence: str = "none"
    adv_eps: float = 0.3  # L∞ radius for fgsm_at / pgd_at (paper: 0.3)
    adv_steps: int = 7  # PGD steps for pgd_at (Madry et al. use 7–40)
    temperature: float = 50.0  # distillation temperature T (paper: 50)
    epochs: int = 3  # the paper ran 70 on a GPU; CPU runs use fewer (record the deviation)
    batch_size: int = 128
    lr: float = 1e-3  # the paper used Adam 2e-4 (eps 1e-4); a higher lr compensates for fewer epochs
    lr_schedule: str = "cosine"  # the paper's is "constant"; cosine decay converges in the few CPU epochs
    adam_eps: float = 1e-4  # Adam's ε: TensorFlow's default and the authors' (PyTorch's default is 1e-8)
    seed: int = 0
    n_train: int | None = None  # class-stratified subset of the training split; None = all of it
    device: str = "auto"  # not part of the identity: the same config on another device is the same model

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a plain dict (e.g. checkpoint metadata); unknown keys are an error.

        A dict without the recipe fields was written before they existed, when every model was trained with
        PyTorch's defaults: those fields are filled with the ``"torch"`` recipe, not with today's defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid: {sorted(names)}")
        return cls(**{**RECIPES[LEGACY_RECIPE], **data})

    @property
    def recipe(self) -> str:
        """``"authors"`` or ``"torch"`` when the three recipe fields match one of ``RECIPES``, else ``"custom"``."""
        mine = {name: getattr(self, name) for name in RECIPES["authors"]}
        return next((name for name, values in RECIPES.items() if values == mine), "custom")


def with_recipe(config: TrainConfig, recipe: str) -> TrainConfig:
    """``config`` with the init, BatchNorm scale and Adam ε of ``RECIPES[recipe]``."""
    _check_choice("recipe", recipe, RECIPES)
    return replace(config, **RECIPES[recipe])


def config_id(config: TrainConfig) -> str:
    """A readable, stable identity: ``<dataset>-<model>-<regularizer>[-lam]-<defence>-e<epochs>-<hash8>``.

    The hash covers every field except ``device`` (sorted JSON, so it is stable across runs and processes). A recipe
    field that holds the legacy (``"torch"``) value is left out, so configs saved before the recipe fields existed
    keep their ids.
    """
    legacy = RECIPES[LEGACY_RECIPE]
    identity = {k: v for k, v in asdict(config).items() if k != "device" and not (k in legacy and v == legacy[k])}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    parts = [config.dataset, config.model]
    if config.activation != "relu":
        parts.append(config.activation)
    parts.append(config.regularizer)
    if config.regularizer != "none":
        parts.append(f"lam{config.lam:g}")
    parts += [config.defence, f"e{config.epochs}", digest]
    return "-".join(parts)


def _check_choice(name: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(sorted(valid))}")


def _check_number(name: str, value, *, low: float, high: float = math.inf, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        if high != math.inf:
            bound += f" and <= {high}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _validate(config: TrainConfig) -> None:
    from gradreg.core.data import DATASETS
    from gradreg.core.models import MODELS

    _check_choice("dataset", config.dataset, DATASETS)
    _check_choice("model", config.model, MODELS)
    _check_choice("activation", config.activation, ACTIVATIONS)
    _check_choice("init", config.init, INITS)
    if not isinstance(config.bn_scale, bool):
        raise ValueError(f"bn_scale must be true or false, got {config.bn_scale!r}")
    _check_number("adam_eps", config.adam_eps, low=0.0, high=1.0, low_open=True)
    _check_choice("regularizer", config.regularizer, REGULARIZER_NAMES)
    _check_choice("defence", config.defence, DEFENCES)
    _check_choice("device", config.device, DEVICES)
    _check_choice("lr_schedule", config.lr_schedule, LR_SCHEDULES)
    _check_number("lam", config.lam, low=0.0)
    if config.regularizer == "none" and config.lam != 0:
        raise ValueError("lam > 0 needs a regularizer (grad_y, grad_uniform or grad_fd); got regularizer='none'")
    _check_number("adv_eps", config.adv_eps, low=0.0, high=1.0)
    _check_number("temperature", config.temperature, low=0.0, low_open=True)
    _check_number("lr", config.lr, low=0.0, high=10.0, low_open=True)
    for name in ("adv_steps", "epochs", "batch_size"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {config.seed!r}")
    if config.n_train is not None and (not isinstance(config.n_train, int) or config.n_train < 10):
        raise ValueError(f"n_train must be None or an integer >= 10, got {config.n_train!r}")
