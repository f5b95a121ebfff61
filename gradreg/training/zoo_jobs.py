"""Training a zoo's models, most important first: in this process, or in parallel worker processes.

Several small trainings share one GPU well: each is bound by its own kernel launches, so one process leaves the GPU
mostly idle. Every model is saved with its weights in half precision and its accuracies recomputed on what was
stored. The first replica of Normal and of Grad Reg (y) at the authors' λ also records, after every epoch, its
accuracy on FGSM (ε = 0.2) crafted on the zoo's Normal model: the paper's training-curve experiment (Ross &
Doshi-Velez 2018, arXiv 1711.09404, PAPER.md §5–6) on the zoo's own schedule.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from gradreg.attacks import single_step_sweep
from gradreg.core.config import TrainConfig, config_id
from gradreg.core.data import load_dataset
from gradreg.core.modules import model_device
from gradreg.evaluation.accuracy import accuracy
from gradreg.training import checkpoints
from gradreg.training.checkpoints import Checkpoint
from gradreg.training.files import write_json
from gradreg.training.loop import EpochStats, estimate_seconds
from gradreg.training.reuse import load_or_train

CURVE_EPS = 0.2  # PAPER.md §5
CURVE_IMAGES = 1000  # first test images scored after each epoch
OnEvent = Callable[[str, dict], None]


@dataclass(frozen=True)
class Job:
    """One model to train: its zoo name, config, directory, and (for a curve job) the model that crafts FGSM."""

    name: str
    config: TrainConfig
    root: Path
    curve_source: Path | None = None

    @property
    def path(self) -> Path:
        return self.root / f"{config_id(self.config)}{checkpoints.SUFFIX}"


def plan(configs: Mapping[str, TrainConfig], replicas: Mapping[str, TrainConfig], out: Path, *,
         reference: str, focus: str, curves: tuple[str, ...] = ()) -> list[Job]:
    """Every job, most important first: the reference, then the other roles (longest first), then the replicas
    and the λ grid by distance from ``focus`` (a grid entry's name), replicas of a seed before the grid entries
    a decade or more away. ``curves``: replica names that record the training curve against ``reference``."""
    source = out / f"{config_id(configs[reference])}{checkpoints.SUFFIX}"
    focus_lam = configs[focus].lam if focus in configs else 1.0

    def rank(name: str, config: TrainConfig, replica: bool) -> tuple:
        if name == reference:
            return (0, 0.0)
        grid = not replica and name.startswith("grad_y_") and name != focus
        if not replica and not grid:
            return (1, -estimate_seconds(config))
        if replica:
            return (2, config.seed - configs[reference].seed - 0.5)
        return (2, abs(math.log10(config.lam / focus_lam)) if config.lam > 0 else 9.0)

    jobs = [(rank(n, c, False), Job(n, c, out)) for n, c in configs.items()]
    jobs += [(rank(n, c, True), Job(n, c, out / "seeds", source if n in curves else None))
             for n, c in replicas.items()]
    return [job for _, job in sorted(jobs, key=lambda pair: pair[0])]


def stored_in_half(ckpt: Checkpoint) -> Checkpoint:
    """``ckpt`` with its floating-point tensors in half precision, and its test and validation accuracy recomputed
    on those weights (what a loaded copy will score)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    half = replace(ckpt, state_dict=state)
    model = half.build()
    scores = {split: accuracy(model, *load_dataset(ckpt.config.dataset, split).tensors) for split in ("test", "val")}
    return replace(half, metrics={**ckpt.metrics, "test_accuracy": scores["test"], "val_accuracy": scores["val"]})


def curve_path(job: Job) -> Path:
    return job.root / f"{config_id(job.config)}.curve.json"


def run_job(job: Job, **train_kwargs) -> dict:
    """Train (or load) one job's model into its directory; a curve job also writes its per-epoch records."""
    records: list[dict] = []
    if job.curve_source is not None and not job.path.is_file():  # an existing model keeps what it has
        train_kwargs["on_epoch_model"] = _curve_scorer(job, records)
    ckpt = load_or_train(job.config, root=job.root, prepare=stored_in_half, **train_kwargs)
    if records and ckpt.complete:
        write_json({"source": job.curve_source.name, "eps": CURVE_EPS, "n": CURVE_IMAGES, "records": records},
                   curve_path(job))
    return {"name": job.name, "id": ckpt.id, "seconds": ckpt.train_seconds, "trained_on": ckpt.trained_on,
            "complete": ckpt.complete}


def _curve_scorer(job: Job, records: list[dict]) -> Callable[[EpochStats, nn.Module], None]:
    x, y = load_dataset(job.config.dataset, "test", n=CURVE_IMAGES).tensors
    (x_adv,) = single_step_sweep(checkpoints.load(job.curve_source).build(), x, y, epsilons=[CURVE_EPS])

    def score(stats: EpochStats, model: nn.Module) -> None:
        if stats.phase != "teacher":
            device = model_device(model)
            records.append({"epoch": stats.epoch, "eps": CURVE_EPS, "clean": accuracy(model, x.to(device), y.to(device)),
                            "transfer_fgsm": accuracy(model, x_adv.to(device), y.to(device)),
                            "val_accuracy": stats.val_accuracy, "grad_norm": stats.grad_norm})
    return score


def run_jobs(jobs: list[Job], *, workers: int = 1, on_event: OnEvent | None = None, **train_kwargs) -> list[dict]:
    """Run ``jobs`` in order in this process (``workers`` = 1; ``train_kwargs`` reach ``train``), or in
    ``workers`` processes that each take the most important job that is ready (a curve job waits for its source).

    Returns:
        One summary per job: ``{"name", "id", "seconds", "trained_on", "complete"}``, in the order they finished.
    """
    emit = on_event or (lambda event, details: None)
    if workers > 1 and train_kwargs:
        raise ValueError(f"{sorted(train_kwargs)} reach training in this process only: use workers=1")
    if workers <= 1:
        done = []
        for job in jobs:
            emit("train", {"name": job.name, "id": config_id(job.config)})
            done.append(run_job(job, **train_kwargs))
            emit("trained", done[-1])
        return done
    return _run_parallel(jobs, workers, emit)


def _run_parallel(jobs: list[Job], workers: int, emit: OnEvent) -> list[dict]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending, running, done = list(jobs), {}, []
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_setup, initargs=(threads,)) as pool:
        while pending or running:
            ready = [job for job in pending if job.curve_source is None or job.curve_source.is_file()]
            for job in ready[: workers - len(running)]:
                pending.remove(job)
                emit("train", {"name": job.name, "id": config_id(job.config)})
                running[pool.submit(run_job, job)] = (job, time.perf_counter())
            if not running:
                raise RuntimeError(f"jobs wait for models no job trains: {[job.name for job in pending]}")
            finished, _ = wait(list(running), timeout=5, return_when=FIRST_COMPLETED)
            for future in finished:
                job, started = running.pop(future)
                done.append(_result(future, job, started))
                emit("trained", done[-1])
    return done


def _worker_setup(threads: int) -> None:
    torch.set_num_threads(threads)  # the machine's cores, shared out among the workers
    torch.backends.cudnn.benchmark = True  # fixed shapes for a whole run: let cuDNN time its algorithms once


def _result(future: Future, job: Job, started: float) -> dict:
    summary = future.result()  # a job that raised stops the build: an incomplete zoo is never written
    return summary | {"wall_seconds": round(time.perf_counter() - started, 1)}
