"""Where checkpoints live: the shipped zoo (``SHIPPED_DIR``, or ``$GRADREG_ZOO_DIR``), the user's folder, the order
they are searched in, the code version stamped into each, and removing one of the user's own.

No file is read here (``gradreg.training.checkpoints`` is the one loader); ``checkpoints`` re-exports these names.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from gradreg.core import __version__

SUFFIX = ".safetensors"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "checkpoints"  # the repository's checkpoints/
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # what ``config_id`` makes: a file name, no path


class CheckpointError(ValueError):
    """A file that is not a usable gradreg checkpoint; the message names the file and the reason."""


def user_dir() -> Path:
    return Path(os.environ.get("GRADREG_CHECKPOINT_DIR") or Path.home() / ".cache" / "gradreg" / "checkpoints")


def zoo_dir() -> Path:
    """The pretrained zoo's directory: ``$GRADREG_ZOO_DIR``, else the repository's ``checkpoints/`` (``SHIPPED_DIR``).
    A pip-installed gradreg (Colab) has no zoo beside it: point the variable at a checkout's ``checkpoints/``."""
    return Path(os.environ.get("GRADREG_ZOO_DIR") or SHIPPED_DIR)


def search_dirs() -> list[Path]:
    """Where checkpoints are looked up by id: the user directory first, then the zoo (``zoo_dir``)."""
    return [user_dir(), zoo_dir()]


def code_version() -> str:
    """``<version>+<commit>`` of this checkout; ``$GRADREG_CODE_VERSION`` where there is no git history (a copy of
    the tree on another machine)."""
    if os.environ.get("GRADREG_CODE_VERSION"):
        return os.environ["GRADREG_CODE_VERSION"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=SHIPPED_DIR.parent, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+{head}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def delete(checkpoint_id: str, *, root: str | Path | None = None) -> Path:
    """Delete the user's checkpoint ``<root>/<checkpoint_id>.safetensors`` and return the path it had.

    Only that one file directly in ``root`` (default: the user dir) goes: an id is a file name, never a path; the
    shipped zoo (``SHIPPED_DIR`` and below) is refused whatever ``root`` says. ``CheckpointError`` says why.
    """
    if not isinstance(checkpoint_id, str) or not ID_PATTERN.fullmatch(checkpoint_id) or ".." in checkpoint_id:
        raise CheckpointError(f"not a checkpoint id: {checkpoint_id!r} (a file name without its suffix: letters, "
                              "digits, '.', '_' and '-', no path)")
    root = Path(root) if root is not None else user_dir()
    shipped, where = SHIPPED_DIR.resolve(), root.resolve()
    if where == shipped or shipped in where.parents:
        raise CheckpointError(f"{root}: the shipped zoo's models are never deleted; only your own trained ones")
    path = root / f"{checkpoint_id}{SUFFIX}"
    if path.is_symlink() or not path.is_file():
        raise CheckpointError(f"no checkpoint {checkpoint_id!r} among your trained models in {root}")
    path.unlink()
    return path
