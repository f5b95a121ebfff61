"""Running a sweep's trials in stages, in this process (``serial``) or on Ray Tune (``ray``), one results table.

Both backends run the same ``run_trial`` on the same trials and write the same rows; a trial that raises becomes
a ``failed`` row with its error and the others go on (a trial waiting for a failed one fails with that reason).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from gradreg.sweeps.results import ResultsTable
from gradreg.sweeps.spec import SweepError, Trial, stages
from gradreg.sweeps.trial import checkpoint_path, failed_row, run_trial

BACKENDS = ("ray", "serial")
OnEvent = Callable[[str, dict], None]  # ("start", {"trial"}) | ("done", row) | ("failed", row)


def run_sweep(trials: Sequence[Trial], storage: str | Path, *, backend: str = "ray", name: str = "sweep",
              address: str | None = None, cpus_per_trial: int | None = None, gpus_per_trial: float = 0.0,
              on_event: OnEvent | None = None, **train_kwargs) -> list[dict]:
    """Run every trial (a trial after the trials it waits for) and write ``<storage>/results.jsonl`` as they finish.

    Args:
        storage: the sweep's folder: checkpoints (content-addressed), cards, the results table, Ray's own records.
            On a cluster every node must see it (a shared file system).
        backend: ``"ray"`` (Ray Tune: ``address`` or ``$RAY_ADDRESS`` is a cluster; none starts an embedded
            single-node Ray sized to this machine) or ``"serial"`` (one trial after another, in this process).
        cpus_per_trial: CPUs per trial, and torch's thread count in it (default: 1 on Ray; all of them serially).
        gpus_per_trial: GPU share per trial (``0.25`` packs four trials on a GPU); above 0 the trials train on CUDA.
        train_kwargs: reach ``train`` in this process (serial only: ``on_batch``, ``on_epoch``, ``stop``).
    Returns:
        The results rows, in the order the trials finished.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    _check_resources(cpus_per_trial, gpus_per_trial)
    if train_kwargs and backend != "serial":
        raise ValueError(f"{sorted(train_kwargs)} reach training in this process only: use the serial backend")
    storage = Path(storage).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    table, emit = ResultsTable(storage), on_event or (lambda event, details: None)
    paths = {t.name: str(checkpoint_path(t, storage)) for t in trials}
    failed: set[str] = set()

    def record(row: dict) -> None:
        table.add(row)
        if row["status"] == "failed":
            failed.add(row["trial"])
        emit(row["status"], row)

    waves = stages(trials)
    if backend == "serial":
        context, run_jobs = nullcontext(), partial(_run_serial, **train_kwargs)
    else:
        from gradreg.sweeps import ray_backend

        context, run_jobs = ray_backend.session(address), ray_backend.run
    with context:
        for number, wave in enumerate(waves):
            runnable = []
            for trial in wave:
                broken = [name for name in trial.after if name in failed]
                if broken:
                    record(failed_row(trial, f"not run: {broken[0]!r}, which it waits for, failed", backend=backend))
                else:
                    runnable.append(trial)
            run_jobs([(trial, paths.get(trial.reference)) for trial in runnable], storage,
                     name=f"{name}-stage{number + 1}", cpus_per_trial=cpus_per_trial or (1 if backend == "ray" else None),
                     gpus_per_trial=gpus_per_trial, record=record, emit=emit)
    return list(table.rows.values())


def _check_resources(cpus: int | None, gpus: float) -> None:
    if cpus is not None and (not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1):
        raise ValueError(f"cpus_per_trial must be an integer >= 1, got {cpus!r}")
    if not isinstance(gpus, (int, float)) or isinstance(gpus, bool) or not 0 <= gpus <= 64 or gpus != gpus:
        raise ValueError(f"gpus_per_trial must be a number >= 0 (0.25: four trials share a GPU), got {gpus!r}")
    if 1 < gpus != int(gpus):
        raise ValueError(f"gpus_per_trial above 1 must be a whole number, got {gpus!r}")


def _run_serial(jobs: list[tuple[Trial, str | None]], storage: Path, *, name: str, cpus_per_trial: int | None,
                gpus_per_trial: float, record: Callable[[dict], None], emit: OnEvent, **train_kwargs) -> None:
    cpus, gpus = cpus_per_trial, gpus_per_trial
    for trial, reference in jobs:
        emit("start", {"trial": trial.name})
        started = time.perf_counter()
        try:
            row = run_trial(trial, storage, reference_path=reference, threads=cpus, gpus=gpus, **train_kwargs)
        except Exception as err:  # reported in the table; the other trials go on
            row = failed_row(trial, f"{type(err).__name__}: {err}", backend="serial",
                             seconds=time.perf_counter() - started)
        record(row)


def default_storage(name: str) -> Path:
    """``$GRADREG_SWEEP_DIR/<name>`` (default ``~/.cache/gradreg/sweeps/<name>``)."""
    return sweeps_root() / name


def sweeps_root() -> Path:
    return Path(os.environ.get("GRADREG_SWEEP_DIR") or Path.home() / ".cache" / "gradreg" / "sweeps")


__all__ = ["BACKENDS", "SweepError", "default_storage", "run_sweep", "sweeps_root"]
