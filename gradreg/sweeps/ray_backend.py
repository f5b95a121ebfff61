"""Trials on Ray Tune: an embedded single-node Ray by default, an existing cluster by address.

Each stage of a sweep is one ``Tuner`` over a grid of trials; a trial asks Ray for ``cpus_per_trial`` CPUs (torch
uses that many threads in it) and ``gpus_per_trial`` GPUs (fractions pack several trials on one GPU). Ray keeps
its own records under ``<storage>/ray``; ours are the results rows, written by the driver as trials finish.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import ray
from ray import tune

from gradreg.sweeps.spec import Trial
from gradreg.sweeps.trial import failed_row, run_trial

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0, Tune's older console output prints nothing
REPO = Path(__file__).resolve().parents[2]  # on sys.path of every trial (a cluster's nodes need gradreg too)


@contextmanager
def session(address: str | None = None) -> Iterator[None]:
    """Ray for the length of a sweep: started (or joined) on entry unless this process already runs it, and then
    shut down on exit."""
    started = connect(address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def connect(address: str | None = None) -> bool:
    """Start or join Ray unless this process already did; True when this call started it.

    No address and no ``$RAY_ADDRESS``: an embedded single-node Ray sized to this machine (``address="local"``,
    so a stale local cluster is never joined by accident). ``"auto"`` or ``"ray://HOST:PORT"``: that cluster.
    """
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env |= {k: v for k, v in os.environ.items() if k.startswith("GRADREG_")}
    kwargs = {"num_cpus": os.cpu_count() or 1} if target == "local" else {}
    ray.init(address=target, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env},
             logging_level=logging.WARNING, **kwargs)
    return True


def run(jobs: list[tuple[Trial, str | None]], storage: Path, *, name: str, cpus_per_trial: int,
        gpus_per_trial: float, record: Callable[[dict], None], emit: Callable[[str, dict], None]) -> None:
    """Run ``jobs`` (trial, reference checkpoint) as one Tune experiment (inside ``session``); ``record`` gets each
    row as it finishes."""
    if not jobs:
        return
    _check_fits(cpus_per_trial, gpus_per_trial)
    quiet = logging.getLogger("ray.tune")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # failed trials are reported as rows, not as tracebacks
    try:
        space = [{"trial": trial.to_dict(), "reference_path": reference, "storage": str(storage),
                  "threads": cpus_per_trial, "gpus": gpus_per_trial} for trial, reference in jobs]
        trainable = tune.with_resources(_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = tune.Tuner(trainable, param_space={"job": tune.grid_search(space)},
                           run_config=tune.RunConfig(name=name, storage_path=str(storage / "ray"), verbose=0,
                                                     callbacks=[_Rows(record, emit)],
                                                     failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()
    finally:
        quiet.setLevel(level)


def _check_fits(cpus: int, gpus: float) -> None:
    """Refuse a trial no node of this Ray could ever run (Tune would wait for it forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
        have = "; ".join(f"{node.get('CPU', 0):g} CPUs, {node.get('GPU', 0):g} GPUs" for node in nodes) or "no nodes"
        raise ValueError(f"no node of this Ray has {cpus} CPUs and {gpus:g} GPUs for a trial (it has: {have}); "
                         "lower --cpus-per-trial / --gpus-per-trial or add such a node")


def _trainable(space: dict) -> None:
    """One trial inside a Ray worker: ``run_trial``, its row reported to Tune as JSON (plus the headline numbers)."""
    job = space["job"]
    row = run_trial(Trial.from_dict(job["trial"]), job["storage"], reference_path=job["reference_path"],
                    threads=job["threads"], gpus=job["gpus"], backend="ray")
    numbers = {k: v for k, v in row.items() if k in ("clean", "test_accuracy", "grad_norm", "train_seconds")}
    tune.report({"row": json.dumps(row), **{k: v for k, v in numbers.items() if v is not None}})


class _Rows(tune.Callback):
    """Driver side: each finished or failed Tune trial becomes a results row, at once."""

    def __init__(self, record: Callable[[dict], None], emit: Callable[[str, dict], None]) -> None:
        self.record, self.emit = record, emit

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.emit("start", {"trial": trial.config["job"]["trial"]["name"]})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.record(json.loads(trial.last_result["row"]))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        ours = Trial.from_dict(trial.config["job"]["trial"])
        self.record(failed_row(ours, _last_line(_error_text(trial)), backend="ray",
                               seconds=trial.last_result.get("time_total_s", 0.0) or 0.0))


def _error_text(trial) -> str:
    """The trial's traceback: the driver's local copy (the storage copy is synced only later), else storage's."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text(errors="replace")
    return trial.get_error() or "unknown error"


def _last_line(traceback: str) -> str:
    """The exception line of a traceback: ``ValueError: boom``."""
    lines = [line.strip() for line in str(traceback).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
