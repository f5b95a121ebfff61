"""The warm start: after the first page of a fresh server has answered, load in a background thread what the other
pages need, so their first visit does not pay for it: torch and the computing modules, the zoo's precomputed lessons
(checked against the zoo and the code), every listed model, the test sets and the datasets' status.

``app.py`` calls ``warm_start`` after each run; only the first call of a process starts the thread, which never blocks a
session: a page that needs something before the thread loaded it loads it itself (imports and Streamlit's caches
wait for each other, nothing is loaded twice). The thread runs without a session, so it calls no Streamlit element
and reads no session state. ``$GRADREG_WARM_START=0`` switches it off.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time

_lock = threading.Lock()
_thread: threading.Thread | None = None
_done = threading.Event()
_report: dict = {}  # what the warm-up did: seconds per step, and an error if one failed
# The modules the pages compute with, beyond the frame's: importing them imports torch, Captum and plotly's figures.
MODULES = ("torch", "gradreg.ui.compute", "gradreg.ui.heavy", "gradreg.ui.widgets", "gradreg.ui.cards",
           "gradreg.ui.train_panel", "gradreg.ui.sweeps", "gradreg.explain.saliency", "captum.attr",
           "gradreg.viz.page_figures", "gradreg.viz.lesson_figures", "plotly.subplots")


def enabled() -> bool:
    return os.environ.get("GRADREG_WARM_START", "1") != "0"


def warm_start() -> None:
    """Start the warm-up thread, once per process (no-op afterwards, or when switched off)."""
    global _thread
    if not enabled() or _thread is not None:
        return
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm, name="gradreg-warm-start", daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Block until the warm-up finished (True) or ``timeout`` seconds passed (False); for benchmarks and tests."""
    return _done.wait(timeout)


def report() -> dict:
    """Seconds each step took, and ``error`` if the warm-up stopped on one (the pages then load what they need)."""
    return dict(_report)


def _warm() -> None:
    try:
        steps = [(f"import {name}", lambda name=name: importlib.import_module(name)) for name in MODULES]
        steps += [("threads", _threads), ("precomputed lessons", _lessons), ("models", _models),
                  ("test sets", _test_sets), ("datasets", _datasets)]
        for name, step in steps:
            began = time.perf_counter()
            step()
            _report[name] = round(time.perf_counter() - began, 3)
    except Exception as err:  # a broken zoo or dataset: the pages show that error themselves when they need it
        _report["error"] = f"{type(err).__name__}: {err}"
        logging.getLogger(__name__).warning("warm start stopped: %s", _report["error"])
    finally:
        _done.set()


def _threads() -> None:
    from gradreg.ui.frame import use_threads

    use_threads()  # torch is imported now: set its thread count directly


def _lessons() -> None:
    from gradreg.ui import stored

    stored.store()


def _models() -> None:
    from gradreg.ui.catalogue import load_listed

    load_listed()


def _test_sets() -> None:
    from gradreg.ui.catalogue import zoo_manifest, signature
    from gradreg.ui.compute import gallery, test_size

    manifest = zoo_manifest(signature())[0]
    if manifest:
        test_size(manifest["dataset"])
        gallery(manifest["dataset"])


def _datasets() -> None:
    from gradreg.ui.catalogue import datasets

    datasets()
