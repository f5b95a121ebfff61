"""Training in the background: one run in a thread that a page can poll and stop, saved when it completes."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

from gradreg.core.config import TrainConfig, config_id
from gradreg.training.reuse import load_or_train


class TrainingJob:
    """One training run in a background thread: stoppable, polled for progress, saved to ``root`` when complete.

    The thread never touches the UI; readers call ``snapshot`` (a consistent copy under a lock).
    ``estimate_seconds``: how long the run is expected to take (``gradreg.training.timing``), shown beside the time
    it has taken.
    """

    def __init__(self, config: TrainConfig, *, root: str | Path | None = None,
                 estimate_seconds: float | None = None) -> None:
        self.config, self.id, self.root = config, config_id(config), root
        self._stop, self._lock = threading.Event(), threading.Lock()
        total = config.epochs * (2 if config.defence == "distill" else 1)  # distillation trains a teacher first
        self._state = {"id": self.id, "state": "running", "phase": "", "batch": 0, "batches": 0, "running": {},
                       "epochs": [], "epochs_total": total, "result": None, "error": "",
                       "estimate_seconds": estimate_seconds, "started": None, "ended": None}
        self._thread = threading.Thread(target=self._run, name=f"train-{self.id}", daemon=True)

    def start(self) -> TrainingJob:
        self._update(started=time.monotonic())
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after the current batch; nothing is saved then."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> dict:
        """``{"id", "state" ∈ running/done/stopped/failed, "phase", "batch", "batches", "running", "epochs",
        "epochs_total", "result", "error", "estimate_seconds", "elapsed"}``; ``epochs`` holds one EpochStats dict per
        finished epoch; ``elapsed``: seconds since ``start`` (to its end once finished), None before it."""
        with self._lock:
            state = {**self._state, "epochs": list(self._state["epochs"]), "running": dict(self._state["running"])}
        started, ended = state.pop("started"), state.pop("ended")
        state["elapsed"] = None if started is None else (ended or time.monotonic()) - started
        return state

    def _update(self, **changes) -> None:
        with self._lock:
            self._state.update(changes)

    def _on_batch(self, batch: int, batches: int, running: dict) -> bool:
        self._update(batch=batch, batches=batches, running=dict(running))
        return self._stop.is_set()

    def _on_epoch(self, stats) -> bool:
        with self._lock:
            self._state["epochs"].append(asdict(stats))
            self._state["phase"], self._state["batch"] = stats.phase, 0
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            ckpt = load_or_train(self.config, root=self.root, on_epoch=self._on_epoch, on_batch=self._on_batch,
                                 stop=self._stop)
        except Exception as err:  # reported to the page as text; the thread must not die silently
            self._update(state="failed", error=f"{type(err).__name__}: {err}", ended=time.monotonic())
            return
        result = {"id": ckpt.id, **ckpt.metrics}
        self._update(state="done" if ckpt.complete else "stopped", result=result, ended=time.monotonic())


def progress(snapshot: Mapping) -> float:
    """Fraction of a job's batches done, in [0, 1] (both phases of a distillation count)."""
    done = len(snapshot["epochs"]) + (snapshot["batch"] / snapshot["batches"] if snapshot["batches"] else 0.0)
    finished = snapshot["state"] == "done"
    return 1.0 if finished else min(done / max(snapshot["epochs_total"], 1), 1.0)
