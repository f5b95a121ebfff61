"""gradreg: input-gradient regularization (Ross & Doshi-Velez, AAAI 2018, https://arxiv.org/abs/1711.09404).

Train, attack, evaluate and explain small image classifiers. The packages, arrows pointing down: ``ui`` (the only
one that imports Streamlit) → ``cli`` → ``lessons`` → ``paper`` → ``training`` → ``evaluation`` → ``attacks`` →
``fastgrad`` → ``core``, with ``explain`` beside ``evaluation`` and ``viz`` a leaf. This module re-exports the
public API, each name imported on first use (Captum itself loads only when a Captum method runs).
"""

from gradreg.core import __version__

# Public name → the module that defines it. Nothing below ``core`` is imported until a name is first used, so
# ``import gradreg.ui`` (the dashboard's first answer) or ``gradreg.core`` does not pay for torch (PEP 562).
_PUBLIC = {
    "ATTACKS": "gradreg.attacks", "attack": "gradreg.attacks", "fgsm": "gradreg.attacks", "pgd": "gradreg.attacks",
    "TrainConfig": "gradreg.core.config", "config_id": "gradreg.core.config",
    "lam_from_authors": "gradreg.core.config",
    "DATASETS": "gradreg.core.data", "DatasetUnavailable": "gradreg.core.data", "load_dataset": "gradreg.core.data",
    "MODELS": "gradreg.core.models", "build_model": "gradreg.core.models",
    "accuracy": "gradreg.evaluation.accuracy", "input_gradient_norms": "gradreg.evaluation.accuracy",
    "robust_accuracy": "gradreg.evaluation.accuracy",
    "masking_checks": "gradreg.evaluation.masking", "transfer_matrix": "gradreg.evaluation.transfer",
    "Checkpoint": "gradreg.training.checkpoints", "CheckpointError": "gradreg.training.checkpoints",
    "list_checkpoints": "gradreg.training.checkpoints", "load": "gradreg.training.checkpoints",
    "save": "gradreg.training.checkpoints",
    "EpochStats": "gradreg.training.loop", "train": "gradreg.training.loop",
    "REGULARIZERS": "gradreg.training.regularizers", "penalty": "gradreg.training.regularizers",
    "load_or_train": "gradreg.training.reuse", "saliency": "gradreg.explain.saliency",
}
__all__ = sorted(["__version__", *_PUBLIC])


def __getattr__(name: str):
    """A public name, imported from its module on first use (``from gradreg import train`` works as before)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gradreg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
