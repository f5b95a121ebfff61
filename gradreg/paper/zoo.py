"""The pretrained zoo: the paper's model set, trained once, evaluated once, described by a manifest.

The set follows Ross & Doshi-Velez 2018 (arXiv 1711.09404) and PAPER.md §3: plain; Grad Reg (y) over a λ_eff
grid; Grad Reg (1/K); the finite-difference variant; FGSM adversarial training; defensive distillation; both
defences; and PGD adversarial training as the non-masked reference. Each model gets a *card* (accuracy under
white-box FGSM and PGD and under FGSM transferred from the plain model, gradient norms, confidence), so the
dashboard can show every model without recomputing anything. ``gradreg.paper.zoo_build`` builds it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from gradreg.core.config import RECIPES, TrainConfig
from gradreg.core.models import DEFAULT_MODEL
from gradreg.training import checkpoints
from gradreg.training.files import write_json

LAMBDA_GRID = (1.0, 10.0, 30.0, 110.0, 300.0, 1000.0)  # λ_eff, around the authors' 110
AUTHORS_LAM = 110.0  # the authors' MNIST Grad Reg (y) λ: λ_TF 56234 / 512 (PAPER.md §1)
AUTHORS_LAM_UNIFORM = 2.0  # … and their Grad Reg (1/K) λ
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
REFERENCE = "plain"  # transferred examples are crafted on this entry, so it is trained first
SEEDS_DIR = "seeds"  # replicas with other seeds live here, out of the app's listings
CURVE_SUFFIX = ".curve.json"
OnEvent = Callable[[str, dict], None]  # (event, details): "train", "trained", "card"


@dataclass(frozen=True)
class Preset:
    """A zoo's network and training schedule (every entry shares them, so the λ grid compares like with like)."""

    model: str
    epochs: int
    n_train: int | None  # None: all 55 000 training images
    batch_size: int
    lr: float
    lr_schedule: str
    seeds: int  # Normal and Grad Reg (y) at the authors' λ are trained with seeds 0 … seeds − 1
    about: str


PRESETS = {
    "cpu": Preset(DEFAULT_MODEL, 3, None, 128, 1e-3, "cosine", 3,
                  "the shipped zoo: 3 epochs of all 55 000 images, batch 128, Adam lr 1e-3 with cosine decay (PAPER.md "
                  "§3 allows a shorter run with a higher lr on a CPU; about 2 h for the MNIST zoo on 2 cores)"),
    "paper": Preset(DEFAULT_MODEL, 70, None, 256, 2e-4, "constant", 3,
                    "the authors' schedule: 70 epochs of all 55 000 images, batch 256, Adam lr 2e-4 constant (a GPU "
                    "run; on an H200 the zoo needs more than 30 min with 10 trainings sharing the GPU)"),
}


def zoo_configs(dataset: str = "mnist", *, preset: str = "cpu", lams: tuple[float, ...] = LAMBDA_GRID,
                lam_defended: float = AUTHORS_LAM, lam_uniform: float = AUTHORS_LAM_UNIFORM, seed: int = 0,
                recipe: str = "authors", **schedule) -> dict[str, TrainConfig]:
    """The default set, name → config; the plain model comes first.

    Args:
        preset: a key of ``PRESETS`` (network and schedule); ``schedule`` overrides its fields (``model``,
            ``epochs``, ``n_train``, ``batch_size``, ``lr``, ``lr_schedule``).
        lams: the Grad Reg (y) grid of λ_eff values.
        lam_defended: λ_eff of grad_fd and "both" (grad_y + FGSM adversarial training).
        lam_uniform: λ_eff of grad_uniform; its penalty is larger than grad_y's at the same λ (the authors' MNIST
            choices were ≈ 2 for 1/K against ≈ 110 for y).
        recipe: a key of ``config.RECIPES`` (init, BatchNorm scale, Adam ε).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    common = {"dataset": dataset, "seed": seed, **RECIPES[recipe], **_schedule(preset, schedule)}
    configs = {REFERENCE: TrainConfig(**common)}
    configs |= {f"grad_y_{lam:g}": TrainConfig(**common, regularizer="grad_y", lam=lam) for lam in lams}
    configs |= {
        "grad_uniform": TrainConfig(**common, regularizer="grad_uniform", lam=lam_uniform),
        "grad_fd": TrainConfig(**common, regularizer="grad_fd", lam=lam_defended),
        "fgsm_at": TrainConfig(**common, defence="fgsm_at"),
        "distill": TrainConfig(**common, defence="distill"),
        "both": TrainConfig(**common, regularizer="grad_y", lam=lam_defended, defence="fgsm_at"),
        "pgd_at": TrainConfig(**common, defence="pgd_at"),
    }
    return configs


def _schedule(preset: str, overrides: dict) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"unknown zoo preset {preset!r}; valid: {', '.join(PRESETS)}")
    values = {k: v for k, v in asdict(PRESETS[preset]).items() if k not in ("seeds", "about")}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"unknown schedule fields {unknown}; valid: {', '.join(values)}")
    return values | overrides


def replica_configs(configs: Mapping[str, TrainConfig], *, seeds: int,
                    names: tuple[str, ...] = (REFERENCE, f"grad_y_{AUTHORS_LAM:g}")) -> dict[str, TrainConfig]:
    """``names``' configs again with seeds 1 … ``seeds`` − 1 (``"<name>-seed<k>"`` → config), for the spread."""
    return {f"{name}-seed{k}": replace(configs[name], seed=configs[name].seed + k)
            for name in names if name in configs for k in range(1, seeds)}


def write_manifest(manifest: dict, out: str | Path) -> Path:
    """Write ``out/manifest.json`` through a temporary file and a rename."""
    return write_json(manifest, Path(out) / MANIFEST)


def default_dir(dataset: str = "mnist") -> Path:
    """Where the shipped zoo of ``dataset`` lives: ``checkpoints/`` for MNIST (the app's default), else
    ``checkpoints/<dataset>/`` (so building another dataset's zoo never overwrites the MNIST manifest)."""
    return checkpoints.SHIPPED_DIR if dataset == "mnist" else checkpoints.SHIPPED_DIR / dataset


def read_manifest(root: str | Path = checkpoints.SHIPPED_DIR) -> dict | None:
    """The manifest in ``root``, or None when there is none; ``ValueError`` when it is malformed."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise ValueError(f"{path}: not a gradreg zoo manifest")
    return manifest
