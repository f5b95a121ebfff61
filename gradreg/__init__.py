"""gradreg: input-gradient regularization (Ross & Doshi-Velez, AAAI 2018, https://arxiv.org/abs/1711.09404).

Train, attack, evaluate and explain small image classifiers. Streamlit is imported only by ``gradreg.ui``.
"""

__version__ = "0.1.0"

from gradreg.attacks import fgsm, pgd
from gradreg.checkpoints import Checkpoint, CheckpointError, list_checkpoints, load, load_or_train, save
from gradreg.config import TrainConfig, config_id, lam_from_authors
from gradreg.data import DATASETS, DatasetUnavailable, load_dataset
from gradreg.evaluate import accuracy, input_gradient_norms
from gradreg.models import MODELS, build_model
from gradreg.regularizers import REGULARIZERS, penalty
from gradreg.train import EpochStats, train

__all__ = [
    "Checkpoint", "CheckpointError", "DATASETS", "DatasetUnavailable", "EpochStats", "MODELS", "REGULARIZERS",
    "TrainConfig", "accuracy", "build_model", "config_id", "fgsm", "input_gradient_norms", "lam_from_authors",
    "list_checkpoints", "load", "load_dataset", "load_or_train", "penalty", "pgd", "save", "train",
]
