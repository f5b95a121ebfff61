"""Files that many writers share: an OS lock per checkpoint id and atomic JSON writes.

The lock is ``fcntl.flock`` on ``.<id>.lock`` (POSIX only), so two processes training the same config never both
train it; a JSON file is written to a temporary file in its directory and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; the same-config lock is then a no-op (README: POSIX only)
    fcntl = None

LOCK_SUFFIX = ".lock"


@contextmanager
def lock(root: str | Path, checkpoint_id: str, *, poll: float = 0.1) -> Iterator[None]:
    """Hold the exclusive OS lock of ``checkpoint_id`` in ``root`` (``fcntl.flock`` on ``.<id>.lock``).

    Threads and processes that write the same id take turns; the OS releases the lock when a process dies, even
    by SIGKILL. The holder deletes the lock file before releasing it; a waiter that then wins the lock of a deleted
    file notices (the path's inode differs) and retries, so no lock file is left behind and no two holders coexist.
    POSIX only: a no-op without ``fcntl``.
    """
    if fcntl is None:
        yield
        return
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{checkpoint_id}{LOCK_SUFFIX}"
    while True:
        handle = open(path, "a")
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(poll)  # polled, not blocking: a waiting thread stays interruptible
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()  # we locked a file its last holder had already deleted: start again
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # releases the lock


def write_json(data: dict | list, path: str | Path) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file in its directory and a rename."""
    return write_text(json.dumps(data, indent=1), path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file in its directory and a rename (readers never see half)."""
    return write_bytes(text.encode(), path)


def write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary ``.<stem>.*.tmp`` in its directory, flushed to disk, then
    renamed into place; the temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
