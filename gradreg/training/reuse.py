"""Train a config once: ``load_or_train`` loads its saved checkpoint, or trains it and saves it under the id's lock.

It sits above both the training loop and checkpoint storage, which know nothing of each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gradreg.core.config import TrainConfig, config_id
from gradreg.training.checkpoints import SUFFIX, Checkpoint, CheckpointError, find, save_locked, load, user_dir
from gradreg.training.files import lock
from gradreg.training.loop import train


def _load_complete(path: Path | None) -> Checkpoint | None:
    """The checkpoint at ``path`` if it exists, is usable and complete; else None."""
    if path is None or not path.is_file():
        return None
    try:
        ckpt = load(path)
    except CheckpointError:
        return None  # an unusable file under this name is replaced by a fresh run
    return ckpt if ckpt.complete else None


def load_or_train(config: TrainConfig, *, root: str | Path | None = None,
                  prepare: Callable[[Checkpoint], Checkpoint] | None = None, **train_kwargs) -> Checkpoint:
    """Load the checkpoint of ``config`` if one exists and is complete; otherwise train it and save it to ``root``.

    Training holds the id's ``lock``: a second process (or thread) asking for the same config meanwhile waits, then
    loads what the first saved instead of training it again. ``prepare`` turns a freshly trained checkpoint into the
    one to save and return (e.g. half-precision weights). ``train_kwargs`` go to ``gradreg.training.loop.train``
    (``on_epoch``, ``on_batch``, ``stop``). A run that was stopped early is returned but not saved.
    """
    cid = config_id(config)
    target = Path(root) if root is not None else user_dir()

    def existing() -> Checkpoint | None:
        return _load_complete(find(cid) if root is None else target / f"{cid}{SUFFIX}")

    ckpt = existing()
    if ckpt is not None:
        return ckpt
    with lock(target, cid):
        ckpt = existing()  # trained by whoever held the lock before us
        if ckpt is not None:
            return ckpt
        ckpt = train(config, **train_kwargs)
        if ckpt.complete:
            ckpt = prepare(ckpt) if prepare is not None else ckpt
            save_locked(ckpt, target)
    return ckpt
