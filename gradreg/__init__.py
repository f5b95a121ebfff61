"""gradreg: input-gradient regularization (Ross & Doshi-Velez, AAAI 2018, https://arxiv.org/abs/1711.09404).

Train, attack, evaluate and explain small image classifiers. The packages, arrows pointing down: ``ui`` (the only
one that imports Streamlit) → ``cli`` → ``lessons`` → ``paper`` → ``training`` → ``evaluation`` → ``attacks`` →
``fastgrad`` → ``core``, with ``explain`` beside ``evaluation`` and ``viz`` a leaf. This module re-exports the
public API; ``saliency`` is imported on first use (Captum itself loads only when a Captum method runs).
"""

from gradreg.attacks import ATTACKS, attack, fgsm, pgd
from gradreg.core import __version__
from gradreg.core.config import TrainConfig, config_id, lam_from_authors
from gradreg.core.data import DATASETS, DatasetUnavailable, load_dataset
from gradreg.core.models import MODELS, build_model
from gradreg.evaluation.accuracy import accuracy, input_gradient_norms, robust_accuracy
from gradreg.evaluation.masking import masking_checks
from gradreg.evaluation.transfer import transfer_matrix
from gradreg.training.checkpoints import Checkpoint, CheckpointError, list_checkpoints, load, save
from gradreg.training.loop import EpochStats, train
from gradreg.training.regularizers import REGULARIZERS, penalty
from gradreg.training.reuse import load_or_train

__all__ = [
    "ATTACKS", "Checkpoint", "CheckpointError", "DATASETS", "DatasetUnavailable", "EpochStats", "MODELS",
    "REGULARIZERS", "TrainConfig", "__version__", "accuracy", "attack", "build_model", "config_id", "fgsm",
    "input_gradient_norms", "lam_from_authors", "list_checkpoints", "load", "load_dataset", "load_or_train",
    "masking_checks", "penalty", "pgd", "robust_accuracy", "saliency", "save", "train", "transfer_matrix",
]


def __getattr__(name: str):
    """``gradreg.saliency``: the attribution function, imported on first use."""
    if name == "saliency":
        from gradreg.explain.saliency import saliency

        return saliency
    raise AttributeError(f"module 'gradreg' has no attribute {name!r}")
