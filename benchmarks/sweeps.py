"""Sweeps: what Ray costs and what it buys on this machine, each against a peer run of the same trials.

The trials are ``sweeps/smoke.toml``'s two roles at ``seeds`` seeds, without its transfer reference so that none
waits for another (with it, every trial waits for the plain model and two CPUs cannot both be busy). Every run trains
its trials from scratch in a fresh folder: a re-run of a sweep trains nothing, which would time nothing.

- Overhead: Ray (embedded, started and stopped inside the run, one trial at a time with every CPU) against the
  serial backend (same threads): the difference per trial is what Ray adds (its start, a worker per trial).
- Packing: Ray with 1 CPU per trial (several trials at once, one thread each) against Ray with every CPU per trial
  (one at a time): the speedup small trials get from running side by side instead of splitting each over threads.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.report import row

ROOT = Path(__file__).resolve().parent.parent


def _trials(seeds: int):
    import tomllib

    from gradreg.sweeps.spec import expand, load_sweep

    data = tomllib.loads((ROOT / "sweeps" / "smoke.toml").read_text())
    data["sweep"].pop("reference", None)
    data["grid"]["seed"] = list(range(seeds))
    trials = expand(data).trials
    assert load_sweep(ROOT / "sweeps" / "smoke.toml").trials[0].config == replace(trials[0].config, seed=0)
    return trials


def _run(trials, backend: str, cpus: int) -> float:
    from gradreg.sweeps.runner import run_sweep

    with tempfile.TemporaryDirectory(prefix="gradreg-bench-sweep-") as storage:
        started = time.perf_counter()
        rows = run_sweep(trials, storage, backend=backend, cpus_per_trial=cpus, name="bench")
        seconds = time.perf_counter() - started
    failed = [r["trial"] for r in rows if r["status"] != "done" or not r["trained"]]
    if failed:
        raise RuntimeError(f"benchmark trials did not train: {failed}")
    return seconds


def measure(*, seeds: int = 2) -> tuple[list, dict]:
    """Rows: Ray's overhead against serial, and 1-CPU trials side by side against all-CPU trials one at a time."""
    cpus = os.cpu_count() or 1
    trials = _trials(seeds)
    n = len(trials)
    serial = _run(trials, "serial", cpus)
    ray_whole = _run(trials, "ray", cpus)
    ray_packed = _run(trials, "ray", 1)
    overhead = (ray_whole - serial) / n
    rows = [
        row("sweeps", f"smoke sweep on Ray, {n} trials one at a time with {cpus} threads each",
            f"serial backend, same trials and threads", ray_whole / serial, target="informational", met=None,
            seconds=ray_whole, peer_seconds=serial,
            note=f"Ray adds {overhead:.1f} s per trial, its start and stop included"),
        row("sweeps", f"smoke sweep on Ray, {min(cpus, n)} trials at once with 1 thread each",
            f"Ray, 1 trial at a time with {cpus} threads", ray_whole / ray_packed, target="> 1× (a speedup)",
            met=ray_whole / ray_packed > 1, seconds=ray_packed, peer_seconds=ray_whole, note="speedup"),
    ]
    return rows, {"trials": n, "cpus": cpus, "serial_s": serial, "ray_whole_cpus_s": ray_whole,
                  "ray_one_cpu_s": ray_packed, "ray_overhead_per_trial_s": overhead}
