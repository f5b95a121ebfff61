"""Interleaved timing and the run's context (machine, versions, device, threads).

Absolute times on a shared machine are noise, so every figure of the benchmark is a ratio against a peer measured
in the same run: the cases of one comparison run round-robin (one repeat of each, then the next round), so that
load from other processes hits them alike, and the median over rounds is reported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import time
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(cases: dict[str, Callable[[], object]], *, device: torch.device, repeats: int = 5,
                min_seconds: float = 0.02) -> dict[str, list[float]]:
    """Seconds per call of each case, ``repeats`` rounds round-robin over the cases, after one warm-up call each.

    A fast case is called several times per round (as many as make ``min_seconds``, counted from its warm-up) so
    that timer resolution and call jitter do not dominate; the figure is still seconds per call, and such a
    block starts with one untimed call. Odd rounds run the cases in reverse order: whichever case of a pair runs
    first after other work is slower for a while (1-image Grad-CAM through gradreg measured 1.30× its Captum peer
    when always first and 0.96× when always second), so each case is first in half of the rounds."""
    calls = {}
    for name, fn in cases.items():
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        calls[name] = max(1, min(100, int(min_seconds / max(time.perf_counter() - start, 1e-6))))
    times = {name: [] for name in cases}
    for round_ in range(repeats):
        for name, fn in (cases.items() if round_ % 2 == 0 else reversed(cases.items())):
            if calls[name] > 1:
                fn()
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / calls[name])
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here")
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # a package put on the path without its metadata
        if importlib.util.find_spec(package) is None:
            return None
        return getattr(importlib.import_module(package), "__version__", "unknown")


def context(device: torch.device) -> dict:
    """What the figures were measured on: machine, versions, device, threads."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "machine": {"node": platform.node(), "platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     **{name: _version(name) for name in ("captum", "streamlit", "numpy")}},
        "device": {"type": device.type, "name": gpu or platform.processor() or "cpu",
                   "cuda": torch.version.cuda if device.type == "cuda" else None},
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
