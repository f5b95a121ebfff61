"""Self-describing checkpoints: one safetensors file whose header carries the config, history and metrics as JSON.

Nothing is ever unpickled. Writes are atomic (temp file in the same directory, fsync, rename), so a crash
never leaves a half-written checkpoint under a checkpoint's name; leftover temp files are hidden, never listed, and
removed by the next save of that id. Writers of one id hold an OS lock (``fcntl.flock`` on ``.<id>.lock``, POSIX
only), so two processes training the same config never both train it: one trains, the other waits, then loads.
Shipped models live in ``checkpoints/`` (elsewhere: ``$GRADREG_ZOO_DIR``, see ``zoo_dir``); new ones go to
``$GRADREG_CHECKPOINT_DIR`` (default ``~/.cache/gradreg/checkpoints``), where ``delete`` may remove them again (never
a shipped one).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from gradreg.core.config import TrainConfig, config_id
from gradreg.core.models import build_model
from gradreg.training.files import LOCK_SUFFIX, lock, write_bytes
from gradreg.training.places import (ID_PATTERN, SHIPPED_DIR, SUFFIX, CheckpointError, code_version, delete,  # noqa: F401
                                     search_dirs, user_dir, zoo_dir)

FORMAT_VERSION = 1
MAX_HEADER_BYTES = 8 * 1024 * 1024  # refuse absurd headers before parsing them
SUSPECT_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tmp")
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL"}  # torch dtype → safetensors header name


@dataclass
class Checkpoint:
    """A trained model with everything needed to rebuild and describe it."""

    config: TrainConfig
    state_dict: dict[str, torch.Tensor]
    model_kwargs: dict  # arguments of build_model besides the name (activation, num_classes…)
    history: list[dict] = field(default_factory=list)  # one EpochStats dict per epoch
    metrics: dict = field(default_factory=dict)  # e.g. test_accuracy
    complete: bool = True  # False when training was stopped early
    train_seconds: float = 0.0
    code_version: str = ""
    created: str = ""
    trained_on: str = ""  # the device and torch version that trained it, e.g. "cuda: NVIDIA H200, torch 2.11.0"

    @property
    def id(self) -> str:
        return config_id(self.config)

    def build(self, *, frozen: bool = True, device: str | torch.device = "cpu") -> nn.Module:
        """A fresh model with these weights, in eval mode; ``frozen`` sets ``requires_grad=False`` on parameters."""
        model = build_model(self.config.model, **self.model_kwargs)
        model.load_state_dict(self.state_dict)
        model.to(device).eval()
        return model.requires_grad_(not frozen)


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``list_checkpoints`` knows about a file without loading its weights."""

    path: Path
    ok: bool
    reason: str = ""  # why it is unusable, when not ok
    id: str = ""
    config: TrainConfig | None = None
    metrics: dict = field(default_factory=dict)
    complete: bool = False
    created: str = ""  # when it was saved, ISO 8601 in UTC ("" when unknown)


def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: {reason}")


def _read_header(path: Path) -> tuple[dict, dict]:
    """Validate the file's structure and metadata without reading the tensors: (metadata, tensor specs)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)  # a safetensors header length (u64) may itself start with 0x80 or "PK": byte 8 is "{"
        if (head[:2] == b"PK" or head[:1] == b"\x80") and head[8:9] != b"{":
            raise _fail(path, "looks like a pickle / torch.save file; gradreg never unpickles (use safetensors)")
        if len(head) < 8:
            raise _fail(path, f"truncated: {size} bytes")
        (n,) = struct.unpack("<Q", head[:8])
        handle.seek(8)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise _fail(path, f"not a safetensors file or truncated (header of {n} bytes in a {size}-byte file)")
        try:
            header = json.loads(handle.read(n))
            meta = json.loads(header.pop("__metadata__", {}).get("gradreg", "null"))
        except (ValueError, AttributeError, TypeError) as err:
            raise _fail(path, f"malformed header ({err})") from None
    if not isinstance(meta, dict):
        raise _fail(path, "a safetensors file without gradreg metadata (not a gradreg checkpoint)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(path, f"checkpoint format {meta.get('format_version')!r}; this gradreg reads {FORMAT_VERSION}")
    _check_meta(path, meta)
    try:
        end = max((int(spec["data_offsets"][1]) for spec in header.values()), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise _fail(path, "malformed tensor table") from None
    if 8 + n + end != size:
        raise _fail(path, f"truncated or padded: expected {8 + n + end} bytes, found {size}")
    return meta, header


def _check_meta(path: Path, meta: dict) -> None:
    """The metadata's fields have the types the app relies on (a hostile file may put anything there)."""
    metrics, history = meta.get("metrics", {}), meta.get("history", [])
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("model_kwargs"), dict):
        raise _fail(path, "malformed metadata: config and model_kwargs must be JSON objects")
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in metrics.values()):
        raise _fail(path, "malformed metadata: metrics must map names to numbers")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise _fail(path, "malformed metadata: history must be a list of objects")
    if not isinstance(meta.get("complete", False), bool):
        raise _fail(path, "malformed metadata: complete must be true or false")
    seconds = meta.get("train_seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise _fail(path, "malformed metadata: train_seconds must be a number")


def _config_and_check_shapes(path: Path, meta: dict, specs: dict) -> TrainConfig:
    try:
        config = TrainConfig.from_dict(meta["config"])
        with torch.device("meta"):
            expected = build_model(config.model, **meta["model_kwargs"]).state_dict()
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _fail(path, f"invalid config in metadata ({err})") from None
    shapes = {name: list(spec.get("shape", [])) for name, spec in specs.items()}
    want = {name: list(t.shape) for name, t in expected.items()}
    if shapes != want:
        raise _fail(path, f"tensors do not match model {config.model!r}: {_shape_diff(shapes, want)}")
    dtypes = {name: str(spec.get("dtype")) for name, spec in specs.items()}
    wrong = sorted(k for k, t in expected.items() if dtypes[k] not in _stored_as(DTYPES.get(t.dtype, dtypes[k])))
    if wrong:
        raise _fail(path, f"wrong tensor dtypes {[(k, dtypes[k]) for k in wrong[:3]]} for model {config.model!r}")
    return config


def _stored_as(dtype: str) -> tuple[str, ...]:
    """The header dtypes a tensor of ``dtype`` may be stored as: float32 weights may be stored in half precision
    (the shipped zoo is) and are widened when loaded."""
    return ("F32", "F16") if dtype == "F32" else (dtype,)


def _shape_diff(got: dict, want: dict) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
             f"wrong shape {[(k, got[k], want[k]) for k in wrong[:3]]}" if wrong else ""]
    return "; ".join(p for p in parts if p)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors (safetensors parses them; nothing executes), refused if any weight is NaN or inf."""
    try:
        tensors = st_load(path.read_bytes())
    except Exception as err:  # safetensors raises its own error types for malformed data
        raise _fail(path, f"tensor data unreadable ({err})") from None
    broken = sorted(k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if broken:
        raise _fail(path, f"non-finite weights (NaN or inf) in {broken[:3]}")
    return tensors


def inspect(path: str | Path) -> CheckpointInfo:
    """Describe a file without building its model; never raises for a bad file (``ok=False`` with a reason).

    The tensors are read and checked too (these models are small), so a file listed as usable also loads."""
    path = Path(path)
    try:
        meta, specs = _read_header(path)
        config = _config_and_check_shapes(path, meta, specs)
        _read_tensors(path)
    except CheckpointError as err:
        return CheckpointInfo(path, False, str(err).removeprefix(f"{path}: "))
    except OSError as err:
        return CheckpointInfo(path, False, f"unreadable ({err.strerror or err})")
    return CheckpointInfo(path, True, "", config_id(config), config, meta.get("metrics", {}),
                          bool(meta.get("complete", False)), str(meta.get("created", "")))


def is_scratch(path: Path) -> bool:
    """A hidden temp file of an atomic write (``.<id>.*.tmp``) or a lock file (``.<id>.lock``)."""
    return path.name.startswith(".") and path.suffix in (".tmp", LOCK_SUFFIX)


def list_checkpoints(root: str | Path | None = None) -> list[CheckpointInfo]:
    """Every checkpoint-like file in ``root`` (default: user dir, then shipped dir), usable or not, by name."""
    roots = [Path(root)] if root is not None else search_dirs()
    infos = []
    for directory in roots:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if is_scratch(path):
                continue  # a save in progress (or killed mid-write) and lock files: never a checkpoint
            if path.is_file() and (path.suffix == SUFFIX or path.suffix in SUSPECT_SUFFIXES):
                infos.append(inspect(path) if path.suffix == SUFFIX else
                             CheckpointInfo(path, False, f"not a safetensors checkpoint ({path.suffix})"))
    return infos


def find(checkpoint_id: str) -> Path | None:
    """The path of a checkpoint id in the search directories, or None."""
    for directory in search_dirs():
        path = directory / f"{checkpoint_id}{SUFFIX}"
        if path.is_file():
            return path
    return None


def load(id_or_path: str | Path) -> Checkpoint:
    """Load a checkpoint by id (searched in user, then shipped dir) or path; ``CheckpointError`` if unusable."""
    path = Path(id_or_path)
    try:
        exists = path.is_file()
    except OSError:  # e.g. a name longer than the file system allows
        exists = False
    if not exists:
        found = find(str(id_or_path)) if len(str(id_or_path)) <= 255 else None
        if found is None:
            known = sorted(info.id for info in list_checkpoints() if info.ok)
            raise CheckpointError(f"no checkpoint {str(id_or_path)!r}; known ids: {', '.join(known) or '(none)'}")
        path = found
    meta, specs = _read_header(path)
    config = _config_and_check_shapes(path, meta, specs)
    tensors = _read_tensors(path)
    ckpt = Checkpoint(config, tensors, meta["model_kwargs"], meta.get("history", []), meta.get("metrics", {}),
                      bool(meta.get("complete", False)), float(meta.get("train_seconds", 0.0)),
                      str(meta.get("code_version", "")), str(meta.get("created", "")),
                      str(meta.get("trained_on", "")))
    try:
        ckpt.build()
    except (RuntimeError, ValueError) as err:
        raise _fail(path, f"weights do not load into {config.model!r} ({err})") from None
    return ckpt


def save(ckpt: Checkpoint, root: str | Path | None = None) -> Path:
    """Write ``<root>/<id>.safetensors`` atomically and return its path (root default: the user dir)."""
    root = Path(root) if root is not None else user_dir()
    with lock(root, ckpt.id):
        return save_locked(ckpt, root)


def save_locked(ckpt: Checkpoint, root: Path) -> Path:
    """``save`` for a caller that holds ``lock(root, ckpt.id)`` already: temp file in ``root``, fsync, rename."""
    meta = {"format_version": FORMAT_VERSION, "config": ckpt.config.to_dict(), "model_kwargs": ckpt.model_kwargs,
            "history": ckpt.history, "metrics": ckpt.metrics, "complete": ckpt.complete,
            "train_seconds": ckpt.train_seconds, "code_version": ckpt.code_version or code_version(),
            "created": ckpt.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "trained_on": ckpt.trained_on}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt.state_dict.items()}
    payload = st_save(tensors, metadata={"gradreg": json.dumps(meta)})
    for stale in root.glob(f".{ckpt.id}.*.tmp"):  # left by a writer killed mid-write; we hold the id's lock
        stale.unlink(missing_ok=True)
    return write_bytes(payload, root / f"{ckpt.id}{SUFFIX}")  # a temp file ".<id>.*.tmp", then a rename
