"""Building the zoo: a sweep (``gradreg.sweeps``) over the zoo's grid, most important model first, then the
manifest from what its trials stored (each model's card: ``gradreg.evaluation.card.model_card``).

The set and the manifest's format are ``gradreg.paper.zoo``'s; Ross & Doshi-Velez 2018 (arXiv 1711.09404) and
PAPER.md §3 name the roles.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Mapping

from gradreg.core.config import TrainConfig
from gradreg.evaluation.card import CARD_EPSILONS
from gradreg.paper.zoo import (AUTHORS_LAM, MAX_MANIFEST_BYTES, REFERENCE, SEEDS_DIR, OnEvent, write_manifest)
from gradreg.sweeps.runner import run_sweep
from gradreg.sweeps.spec import Trial
from gradreg.sweeps.trial import checkpoint_path, curve_path
from gradreg.training import checkpoints
from gradreg.training.files import write_json
from gradreg.training.loop import estimate_seconds


def build_zoo(configs: Mapping[str, TrainConfig], *, out: str | Path = checkpoints.SHIPPED_DIR, n_eval: int = 256,
              replicas: Mapping[str, TrainConfig] | None = None, workers: int = 1, train_only: bool = False,
              about: dict | None = None, on_event: OnEvent | None = None, **train_kwargs) -> dict | None:
    """Train (or load) every config into ``out``, compute its card, and write ``out/manifest.json`` atomically.

    The zoo is a sweep (``gradreg.sweeps``) over its own grid: its trials store their weights in half precision,
    named by their config's id, so a re-run trains nothing that is there; the cards and the sweep's
    ``results.jsonl`` go into ``out`` too.

    Args:
        configs: name → config, e.g. ``zoo_configs()``; the entry named ``"plain"``, if any, is the transfer source.
        n_eval: the first ``n_eval`` test images are used for the cards (the paper's protocol uses 256).
        replicas: more seeds of some entries (``replica_configs``), trained into ``out/seeds/`` and listed under
            the manifest's ``"replicas"``; the first replica of plain and of the authors' Grad Reg (y) records
            its training curve.
        workers: trials at once: 1 trains here, in order; more run on an embedded Ray, sharing the CPUs (and,
            training on CUDA, one GPU: several small trainings share it well).
        train_only: train and stop: no cards, no manifest (e.g. on a borrowed GPU; cards are computed later
            where the zoo is used, from the stored weights).
        about: recorded in the manifest (e.g. the preset and its schedule).
        train_kwargs: passed to ``train`` when ``workers`` is 1 (``on_epoch``, ``on_batch``, ``stop``).
    Returns:
        The manifest: ``{"format_version", "dataset", "n_eval", "built_seconds", "about", "training", "models",
        "replicas"}``; None with ``train_only``.
    """
    out, emit, started = Path(out).resolve(), on_event or (lambda event, details: None), time.perf_counter()
    replicas = dict(replicas or {})
    datasets = {config.dataset for config in [*configs.values(), *replicas.values()]}
    if len(datasets) != 1:
        raise ValueError(f"a zoo holds one dataset, got {sorted(datasets)}")
    trials = zoo_trials(configs, replicas, out, n_eval=0 if train_only else n_eval)
    rows = run_sweep(trials, out, name="zoo", on_event=_zoo_events(emit), **_backend(trials, workers),
                     **train_kwargs)
    failed = [f"{row['trial']}: {row['error']}" for row in rows if row["status"] == "failed"]
    if failed:
        raise RuntimeError("the zoo is incomplete, no manifest written: " + "; ".join(failed))
    training = {"wall_seconds": round(time.perf_counter() - started, 1), "workers": workers,
                "trained_on": sorted({row["trained_on"] for row in rows})}
    if train_only:
        write_json(training | {"jobs": [_job_summary(row) for row in rows]}, out / "training.json")
        return None
    by_name = {row["trial"]: row for row in rows}
    entries = {trial.name: _entry(trial, by_name[trial.name], out, emit) for trial in trials}
    listed = sorted(configs, key=lambda name: name != REFERENCE)  # the configs' own order, plain first
    manifest = {"format_version": 1, "dataset": datasets.pop(), "n_eval": n_eval,
                "built_seconds": round(time.perf_counter() - started, 1), "about": about or {},
                "training": _read_training(out) or training, "models": [entries[name] for name in listed],
                "replicas": [entries[name] for name in replicas]}
    write_manifest(manifest, out)
    return manifest


def zoo_trials(configs: Mapping[str, TrainConfig], replicas: Mapping[str, TrainConfig], out: Path, *,
               n_eval: int) -> list[Trial]:
    """The zoo's trials, most important first: the reference, then the other roles (longest first), then the
    replicas and the λ grid by distance from the authors' λ (a replica of a seed before grid entries a decade or
    more away). Every card's transferred FGSM is crafted on the reference; the first replica of plain and of the
    authors' Grad Reg (y) records its training curve against it (and so waits for it)."""
    focus = f"grad_y_{AUTHORS_LAM:g}"
    focus_lam = configs[focus].lam if focus in configs else 1.0
    reference = REFERENCE if REFERENCE in configs else None
    ref_path = out / f"{checkpoints.config_id(configs[REFERENCE])}{checkpoints.SUFFIX}" if reference else None
    curves = {f"{REFERENCE}-seed1", f"{focus}-seed1"} if reference else set()

    def rank(name: str, config: TrainConfig, replica: bool) -> tuple:
        if name == reference:
            return (0, 0.0)
        if not replica and not (name.startswith("grad_y_") and name != focus):
            return (1, -estimate_seconds(config))
        if replica:
            return (2, config.seed - configs[REFERENCE if reference else next(iter(configs))].seed - 0.5)
        return (2, abs(math.log10(config.lam / focus_lam)) if config.lam > 0 else 9.0)

    def trial(name: str, config: TrainConfig, replica: bool) -> Trial:
        linked = reference is not None and name != reference
        entry = name.split("-seed")[0]  # a replica is a seed of its entry; the λ grid is one role, λ its axis
        role = "grad_y" if entry.startswith("grad_y_") else entry
        return Trial(name=name, role=role, config=config, n_eval=n_eval, epsilons=CARD_EPSILONS,
                     reference=reference if linked else None, after=(reference,) if linked else (),
                     root=str(out / SEEDS_DIR if replica else out), half=True,
                     curve_source=str(ref_path) if name in curves else None)

    ranked = [(rank(n, c, False), trial(n, c, False)) for n, c in configs.items()]
    ranked += [(rank(n, c, True), trial(n, c, True)) for n, c in replicas.items()]
    return [t for _, t in sorted(ranked, key=lambda pair: pair[0])]


def _backend(trials: list[Trial], workers: int) -> dict:
    """``workers`` = 1: serial, here. More: Ray with the CPUs shared out, and each trial a 1/workers share of the
    GPU when the zoo trains on CUDA."""
    if workers <= 1:
        return {"backend": "serial"}
    import torch

    devices = {t.config.device for t in trials}
    cuda = "cuda" in devices or ("auto" in devices and torch.cuda.is_available())
    return {"backend": "ray", "cpus_per_trial": max(1, (os.cpu_count() or 1) // workers),
            "gpus_per_trial": 1 / workers if cuda else 0.0}


def _zoo_events(emit: OnEvent) -> Callable[[str, dict], None]:
    """The sweep's events as the zoo's: "train" {name}, "trained" {name, id, seconds, trained_on}."""
    def on_event(event: str, details: dict) -> None:
        if event == "start":
            emit("train", {"name": details["trial"]})
        elif event == "done":
            emit("trained", _job_summary(details))
    return on_event


def _job_summary(row: dict) -> dict:
    return {"name": row["trial"], "id": row["id"], "seconds": row["train_seconds"], "trained_on": row["trained_on"],
            "complete": True, "wall_seconds": row["seconds"]}


def _entry(trial: Trial, row: dict, out: Path, emit: OnEvent) -> dict:
    """The manifest entry of a finished trial: its stored checkpoint and the card its trial computed."""
    path = checkpoint_path(trial, out)
    ckpt = checkpoints.load(path)
    card = json.loads((out / row["card_file"]).read_text())["card"] | {"recipe": ckpt.config.recipe}
    emit("card", {"name": trial.name, "card": card})
    entry = {"name": trial.name, "id": ckpt.id, "file": path.relative_to(out).as_posix(),
             "config": ckpt.config.to_dict(), "test_accuracy": ckpt.metrics["test_accuracy"],
             "train_seconds": round(ckpt.train_seconds, 1), "trained_on": ckpt.trained_on,
             "code_version": ckpt.code_version, "card": card}
    curve = curve_path(trial, out)
    if curve.is_file():
        entry["curve"] = json.loads(curve.read_text())
    return entry


def _read_training(out: Path) -> dict | None:
    """What a ``train_only`` run recorded in ``out/training.json`` (e.g. on another machine), if anything."""
    path = out / "training.json"
    if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None
