"""gradreg: input-gradient regularization (Ross & Doshi-Velez, AAAI 2018, https://arxiv.org/abs/1711.09404).

Train, attack, evaluate and explain small image classifiers. Streamlit is imported only by ``gradreg.ui``;
Captum only by ``gradreg.saliency`` / ``gradreg.metrics`` (import them directly: ``from gradreg.saliency import
saliency``), so ``import gradreg`` stays light.
"""

__version__ = "0.1.0"

from gradreg.attacks import ATTACKS, attack, fgsm, pgd
from gradreg.checkpoints import Checkpoint, CheckpointError, list_checkpoints, load, load_or_train, save
from gradreg.config import TrainConfig, config_id, lam_from_authors
from gradreg.data import DATASETS, DatasetUnavailable, load_dataset
from gradreg.evaluate import accuracy, input_gradient_norms, robust_accuracy
from gradreg.masking import masking_checks
from gradreg.models import MODELS, build_model
from gradreg.regularizers import REGULARIZERS, penalty
from gradreg.train import EpochStats, train
from gradreg.transfer import transfer_matrix

__all__ = [
    "ATTACKS", "Checkpoint", "CheckpointError", "DATASETS", "DatasetUnavailable", "EpochStats", "MODELS",
    "REGULARIZERS", "TrainConfig", "accuracy", "attack", "build_model", "config_id", "fgsm", "input_gradient_norms",
    "lam_from_authors", "list_checkpoints", "load", "load_dataset", "load_or_train", "masking_checks", "penalty",
    "pgd", "robust_accuracy", "save", "train", "transfer_matrix",
]
