"""The zoo's precomputed lessons on the serving side (``gradreg.lessons.precomputed``): a computation marked
``@stored`` first looks its call up in the zoo's file and computes live only when it is not there, or when the file
is missing, broken or stale (then with no error: the pages compute as they always did). ``lessons_status`` says which,
for the Models & data page.

The file is built by recording: ``recording()`` switches look-ups off and keeps every ``@stored`` call's value, while
``gradreg.ui.precompute`` runs each page at its default settings (``python -m gradreg lessons``).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from gradreg.lessons import precomputed
from gradreg.training.places import zoo_dir

_lock = threading.Lock()
_opened: dict[tuple, tuple[precomputed.Store | None, str]] = {}  # ``_key()`` → (store, why not)
_recorder: dict[str, Any] | None = None  # call key → value, while recording
_skipped: dict[str, str] = {}  # computation → why its values could not be stored
_misses: Counter = Counter()  # computation → calls computed live although a current store was open


def store() -> precomputed.Store | None:
    """The current zoo's store, opened and checked once per zoo folder and state of its files (a zoo or its lessons
    rebuilt while the server runs are read again; ``warm.warm_start`` opens it in the background); None when it
    cannot be used (see ``lessons_status``) or while recording."""
    if _recorder is not None:
        return None
    key = _key()
    if key not in _opened:
        with _lock:
            if key not in _opened:
                try:
                    _opened[key] = (precomputed.open_current(Path(key[0])), "")
                except precomputed.StoreError as err:
                    _opened[key] = (None, str(err))
    return _opened[key][0]


def _key() -> tuple[str, int, int]:
    """The zoo folder and the modification times of its manifest and its lessons file (0 where missing)."""
    folder = zoo_dir()
    stamps = []
    for path in (folder / "manifest.json", folder / precomputed.FILE):
        try:
            stamps.append(path.stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return str(folder), *stamps


def lessons_status() -> str:
    """One sentence on the precomputed lessons this server uses."""
    found = store()
    if found is not None:
        return (f"{len(found)} precomputed views of the zoo's lessons in `{found.path}` (built {found.built or '?'}, "
                "current): first visits at the default settings read them.")
    reason = _opened.get(_key(), (None, "recording"))[1]
    return f"No precomputed lessons in use: {reason}. Pages compute their views live."


def stored(func: Callable) -> Callable:
    """Serve ``func``'s calls from the zoo's precomputed lessons when stored there (keyed by its name and its
    arguments, defaults filled in); else call it (and keep the value while recording). A stored value costs
    nothing, so the server's caps, which ``func`` checks before it computes, do not refuse it."""
    signature, name = inspect.signature(func), func.__name__

    @functools.wraps(func)
    def lookup(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = tuple(bound.arguments.values())
        found = store()
        if found is not None:
            if (value := found.get(name, call)) is not precomputed.MISSING:
                return value
            _misses[name] += 1
        value = func(*args, **kwargs)
        if _recorder is not None:
            _keep(name, call, value)
        return value

    lookup.stored_name = name
    return lookup


def misses() -> dict[str, int]:
    """How many calls of each computation this process computed live while a current store was open (a page's
    default view that is not stored shows up here; the tests check there is none)."""
    return dict(_misses)


def has(key: tuple) -> bool:
    """Whether the call ``key`` = (name, *arguments) of a ``@stored`` computation is stored (a bounded run counts it
    as done: it costs nothing, and timing it would teach the run's estimates a false cost)."""
    found = store()
    return found is not None and found.has(key[0], tuple(key[1:]))


def _keep(name: str, call: tuple, value: Any) -> None:
    try:
        key = precomputed.call_key(name, call)
        precomputed.encode(value, {})
    except TypeError as err:
        _skipped[name] = str(err)
        return
    _recorder[key] = value


@contextmanager
def recording() -> Iterator[dict[str, Any]]:
    """Look-ups off; yields the dict of call key → value that every ``@stored`` call computed meanwhile fills."""
    global _recorder
    _recorder, _skipped_before = {}, dict(_skipped)
    try:
        yield _recorder
    finally:
        _recorder = None
        _opened.clear()  # the file may have been rewritten
        _skipped.update(_skipped_before)


def skipped() -> dict[str, str]:
    """Computations whose values could not be stored, and why (the recording says so)."""
    return dict(_skipped)
