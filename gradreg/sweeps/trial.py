"""One trial of a sweep, wherever it runs: ``load_or_train`` into content-addressed storage, then the model's card.

A finished model is never trained again (its file is named by its config's id), and a finished card is never
computed again (it is stored beside it under a name that hashes what it measured), so a re-run or a resumed sweep
only does what is missing. The row it returns is one line of the sweep's results table.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gradreg.attacks import single_step_sweep
from gradreg.core.data import load_dataset
from gradreg.core.modules import model_device
from gradreg.evaluation.accuracy import accuracy
from gradreg.evaluation.card import model_card
from gradreg.sweeps.spec import Trial
from gradreg.training import checkpoints
from gradreg.training.checkpoints import Checkpoint
from gradreg.training.files import write_json
from gradreg.training.loop import EpochStats
from gradreg.training.reuse import load_or_train

CURVE_EPS = 0.2  # PAPER.md §5
CURVE_IMAGES = 1000  # first test images scored after each epoch
CARDS = "cards"
CHECKPOINTS = "checkpoints"


def checkpoint_dir(trial: Trial, storage: str | Path) -> Path:
    """Where ``trial``'s model is stored: its own ``root`` (the zoo's) or the sweep's ``<storage>/checkpoints``."""
    return Path(trial.root) if trial.root else Path(storage) / CHECKPOINTS


def checkpoint_path(trial: Trial, storage: str | Path) -> Path:
    return checkpoint_dir(trial, storage) / f"{trial.id}{checkpoints.SUFFIX}"


def curve_path(trial: Trial, storage: str | Path) -> Path:
    return checkpoint_dir(trial, storage) / f"{trial.id}.curve.json"


def run_trial(trial: Trial, storage: str | Path, *, reference_path: str | Path | None = None, threads: int | None = None,
              gpus: float = 0.0, backend: str = "serial", **train_kwargs) -> dict:
    """Train (or load) ``trial``'s model, compute (or load) its card, and return its results row.

    Args:
        storage: the sweep's folder (checkpoints and cards go under it unless the trial names its own root).
        reference_path: the checkpoint that crafts the card's transferred FGSM (the trial's ``reference``).
        threads: torch's thread count for this trial (the CPUs its scheduler gave it); None leaves it.
        gpus: the GPU share the scheduler gave it; above 0 the model trains on CUDA.
        train_kwargs: reach ``gradreg.training.loop.train`` (``on_batch``, ``on_epoch``, ``stop``).
    Returns:
        ``{"trial", "role", "status": "done", "id", <config columns>, <card metrics>, "test_accuracy",
        "val_accuracy", "trained", "train_seconds", "seconds", "host", "trained_on", "backend", "finished"}``.
    """
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(int(threads))
    config = replace(trial.config, device="cuda") if gpus > 0 else trial.config
    path = checkpoint_path(trial, storage)
    before = path.stat().st_mtime_ns if path.is_file() else None
    records: list[dict] = []
    if trial.curve_source and before is None:  # a stored model keeps the curve it has
        train_kwargs["on_epoch_model"] = _curve_scorer(config.dataset, Path(trial.curve_source), records)
    ckpt = load_or_train(config, root=path.parent, prepare=stored_in_half if trial.half else None, **train_kwargs)
    if not ckpt.complete:
        raise RuntimeError(f"training of {trial.name!r} was stopped before its last epoch; nothing was saved")
    if records:
        write_json({"source": Path(trial.curve_source).name, "eps": CURVE_EPS, "n": CURVE_IMAGES,
                    "records": records}, curve_path(trial, storage))
    card, card_file = _card(trial, ckpt, storage, reference_path) if trial.n_eval else ({}, None)
    trained = not path.is_file() or path.stat().st_mtime_ns != before
    return {"trial": trial.name, "role": trial.role, "status": "done", "id": trial.id, "reference": trial.reference,
            **_config_columns(trial), **_flatten(card), "card_file": card_file,
            "checkpoint": _relative(path, storage),
            "test_accuracy": ckpt.metrics.get("test_accuracy"), "val_accuracy": ckpt.metrics.get("val_accuracy"),
            "trained": trained, "train_seconds": round(ckpt.train_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1), "host": socket.gethostname(),
            "trained_on": ckpt.trained_on, "backend": backend, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _relative(path: Path, storage: str | Path) -> str:
    """``path`` relative to the sweep's folder when it lies inside it (the folder can move), else absolute."""
    try:
        return path.resolve().relative_to(Path(storage).resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def failed_row(trial: Trial, error: str, *, backend: str, seconds: float = 0.0) -> dict:
    """The results row of a trial that raised: its config and the error, no metrics."""
    return {"trial": trial.name, "role": trial.role, "status": "failed", "id": trial.id, "error": error,
            "reference": trial.reference, **_config_columns(trial), "seconds": round(seconds, 1),
            "host": socket.gethostname(), "backend": backend, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _config_columns(trial: Trial) -> dict:
    return {k: v for k, v in trial.config.to_dict().items() if k != "device"} | {"recipe": trial.config.recipe}


def _flatten(card: dict) -> dict:
    """A card as flat columns: ``clean``, ``grad_norm``, …, and ``fgsm_<ε>``, ``pgd_<ε>``, ``transfer_fgsm_<ε>``."""
    flat = {k: v for k, v in card.items() if k not in ("curves", "n")}
    if card:
        flat["n_eval"] = card["n"]
    for point in card.get("curves", []):
        for attack in ("fgsm", "pgd", "transfer_fgsm"):
            if point[attack] is not None:
                flat[f"{attack}_{point['eps']:g}"] = point[attack]
    return flat


def _card(trial: Trial, ckpt: Checkpoint, storage: str | Path, reference_path: str | Path | None) -> tuple[dict, str]:
    """The model's card on the first ``n_eval`` test images (``gradreg.evaluation.card.model_card``), read from
    ``<storage>/cards`` when it was computed; and that file's path relative to ``storage``."""
    reference_id = _reference_id(reference_path) if reference_path else None
    what = {"n_eval": trial.n_eval, "epsilons": list(trial.epsilons), "pgd_steps": trial.pgd_steps,
            "reference": reference_id}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{CARDS}/{trial.id}-{digest}.json"
    path = Path(storage) / name
    if path.is_file():
        try:
            return json.loads(path.read_text())["card"], name
        except (ValueError, KeyError):
            pass  # a damaged card is computed again
    x, y = load_dataset(trial.config.dataset, "test", n=None).tensors
    reference = checkpoints.load(reference_path).build() if reference_path else None  # only when computing
    card = model_card(ckpt.build(), x[: trial.n_eval], y[: trial.n_eval], epsilons=trial.epsilons,
                      reference=reference, pgd_steps=trial.pgd_steps)
    write_json({"what": what, "card": card}, path)
    return card, name


def _reference_id(path: str | Path) -> str:
    """The reference checkpoint's id from its header alone (its weights are read only when a card is computed)."""
    info = checkpoints.inspect(path)
    if not info.ok:
        raise checkpoints.CheckpointError(f"{path}: {info.reason}")
    return info.id


def stored_in_half(ckpt: Checkpoint) -> Checkpoint:
    """``ckpt`` with its floating-point tensors in half precision, and its test and validation accuracy recomputed
    on those weights (what a loaded copy will score)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    half = replace(ckpt, state_dict=state)
    model = half.build()
    scores = {split: accuracy(model, *load_dataset(ckpt.config.dataset, split).tensors) for split in ("test", "val")}
    return replace(half, metrics={**ckpt.metrics, "test_accuracy": scores["test"], "val_accuracy": scores["val"]})


def _curve_scorer(dataset: str, source: Path, records: list[dict]) -> Callable[[EpochStats, nn.Module], None]:
    """After each epoch: clean accuracy and accuracy on FGSM (ε = ``CURVE_EPS``) crafted on ``source``, the paper's
    training-curve experiment (Ross & Doshi-Velez 2018, arXiv 1711.09404, PAPER.md §5–6)."""
    x, y = load_dataset(dataset, "test", n=CURVE_IMAGES).tensors
    (x_adv,) = single_step_sweep(checkpoints.load(source).build(), x, y, epsilons=[CURVE_EPS])

    def score(stats: EpochStats, model: nn.Module) -> None:
        if stats.phase != "teacher":
            device = model_device(model)
            records.append({"epoch": stats.epoch, "eps": CURVE_EPS, "clean": accuracy(model, x.to(device), y.to(device)),
                            "transfer_fgsm": accuracy(model, x_adv.to(device), y.to(device)),
                            "val_accuracy": stats.val_accuracy, "grad_norm": stats.grad_norm})
    return score
