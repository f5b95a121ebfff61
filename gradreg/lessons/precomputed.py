"""What the lesson pages show for the shipped zoo at their default settings, computed when the zoo is built and
stored beside it, so a first visit reads it instead of computing it (issue "Instant from the first click").

One file, ``<zoo>/lessons/views.safetensors``: its arrays as safetensors tensors, and in its header's metadata a
JSON index from each call (a computation's name and arguments, e.g. ``["saliency_maps", ["<id>", "mnist", [1, 2],
"input_gradient"]]``) to its value. Values are trees of ``None``, booleans, numbers, strings, lists, tuples, dicts
(any primitive keys) and numpy arrays; nothing is ever unpickled, and a file that does not parse is refused with a
reason, never half-read.

The header also carries the file's **fingerprint**: the format, a hash of the zoo's files (manifest and checkpoints)
and a hash of the code the values come from (``CODE``, docstrings and comments ignored). A file whose fingerprint
differs from the running one is stale: it is not used, and every view is computed live, as without it.
Rebuild it with ``python -m gradreg zoo`` or ``python -m gradreg lessons``. Versions of torch and numpy are not
part of it (they may move the last digits of a number).
"""

from __future__ import annotations

import ast
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradreg.training.files import write_bytes

FORMAT = 1
FILE = Path("lessons") / "views.safetensors"
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 512 * 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
# The code whose results are stored: a change to any of it (not to its docstrings or comments) makes the file stale.
CODE = ("core", "fastgrad", "attacks", "explain", "evaluation", "lessons", "training/checkpoints.py",
        "ui/compute.py", "ui/heavy.py")
MISSING = object()  # ``Store.get`` of a call that is not stored


class StoreError(ValueError):
    """A precomputed file that cannot be used; the message says why."""


def call_key(name: str, args: tuple) -> str:
    """The index key of a call: canonical JSON of ``[name, args]`` (tuples as lists; floats as Python prints them,
    which reads back to the same float)."""
    return json.dumps([name, list(args)], separators=(",", ":"), allow_nan=True, default=_key_default)


def _key_default(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a key argument")


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved into ``arrays`` (named ``a0``, ``a1``…). Dicts become ``{"$d": [[key,
    value], …]}``, tuples ``{"$t": […]}``, arrays ``{"$a": name}``; ``TypeError`` for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.dtype.byteorder == ">":
            raise TypeError(f"arrays of {value.dtype} are not stored")
        name = f"a{len(arrays)}"
        arrays[name] = np.ascontiguousarray(value)
        return {"$a": name}
    if isinstance(value, tuple):
        return {"$t": [encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {"$d": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    raise TypeError(f"{type(value).__name__} is not stored")


def decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of ``encode`` (arrays are fresh copies: a caller may write to them)."""
    if isinstance(tree, list):
        return [decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "$a" in tree:
        return arrays[tree["$a"]].copy()
    if "$t" in tree:
        return tuple(decode(v, arrays) for v in tree["$t"])
    return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in tree["$d"]}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def code_hash(root: Path = ROOT) -> str:
    """A hash of the modules in ``CODE``, read as syntax trees without their docstrings."""
    digest = hashlib.sha256()
    for part in CODE:
        path = root / part
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            tree = ast.parse(module.read_text())
            for node in ast.walk(tree):
                body = getattr(node, "body", None)
                if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                    node.body = body[1:] or [ast.Pass()]
            digest.update(module.relative_to(root).as_posix().encode() + b"\0" + ast.dump(tree).encode())
    return digest.hexdigest()[:16]


def zoo_hash(zoo_dir: Path) -> str:
    """A hash of the zoo's manifest and checkpoint files (their bytes, not their dates: a clone changes those)."""
    digest = hashlib.sha256()
    for path in sorted([zoo_dir / "manifest.json", *zoo_dir.glob("*.safetensors")]):
        if path.is_file():
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def fingerprint(zoo_dir: Path) -> dict[str, Any]:
    return {"format": FORMAT, "zoo": zoo_hash(zoo_dir), "code": code_hash()}


@dataclass
class Store:
    """A read-only precomputed file: ``get(name, args)`` is the stored value of a call, or ``MISSING``."""

    path: Path
    fingerprint: dict
    index: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    built: str = ""

    def get(self, name: str, args: tuple) -> Any:
        tree = self.index.get(call_key(name, args), MISSING)
        return MISSING if tree is MISSING else decode(tree, self.arrays)

    def has(self, name: str, args: tuple) -> bool:
        return call_key(name, args) in self.index

    def __len__(self) -> int:
        return len(self.index)


def write(path: Path, values: dict[str, Any], fingerprint: dict, *, built: str = "") -> Path:
    """Write ``values`` (``call_key`` → value) atomically to ``path`` (temp file in the same folder, then rename)."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    index = {key: encode(value, arrays) for key, value in sorted(values.items())}
    header = {"fingerprint": fingerprint, "built": built, "index": index}
    metadata = {"gradreg.lessons": json.dumps(header, separators=(",", ":"), allow_nan=True)}
    return write_bytes(save(arrays or {"empty": np.zeros(0, np.float32)}, metadata=metadata), path)


def read(path: Path) -> Store:
    """The store in ``path``; ``StoreError`` naming what is wrong with a missing, oversized or malformed file."""
    from safetensors.numpy import load

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StoreError(f"{path} is {size} bytes, over {MAX_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as err:
        raise StoreError(f"{path} cannot be read ({err.strerror or err})") from None
    if len(data) < 8 or struct.unpack("<Q", data[:8])[0] > min(MAX_HEADER_BYTES, len(data) - 8):
        raise StoreError(f"{path} is not a safetensors file")
    try:
        raw = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
        header = json.loads(raw["__metadata__"]["gradreg.lessons"])
        arrays = load(data)
        index, found = header["index"], header["fingerprint"]
        if not isinstance(index, dict) or not isinstance(found, dict):
            raise TypeError("index or fingerprint is not an object")
        for tree in index.values():
            _check_tree(tree, arrays)
    except Exception as err:  # safetensors raises its own error types for bad data
        raise StoreError(f"{path} is malformed ({type(err).__name__}: {err})") from None
    return Store(path, found, index, arrays, str(header.get("built", "")))


def _check_tree(tree: Any, arrays: dict) -> None:
    """Every node is JSON or one of ``encode``'s tagged forms, and every array it names exists."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if len(node) != 1 or not {"$a", "$t", "$d"} & set(node):
                raise TypeError(f"an untagged object {list(node)[:3]}")
            if "$a" in node and node["$a"] not in arrays:
                raise KeyError(f"array {node['$a']!r} missing")
            if "$d" in node and not all(isinstance(p, list) and len(p) == 2 for p in node["$d"]):
                raise TypeError("a dict entry is not a [key, value] pair")
            if "$a" not in node:
                stack.append(next(iter(node.values())))


def open_current(zoo_dir: Path) -> Store:
    """The zoo's store if it exists, parses and matches the zoo and the code as they are now; ``StoreError``
    saying why not otherwise."""
    store = read(zoo_dir / FILE)
    now = fingerprint(zoo_dir)
    stale = [k for k in ("format", "zoo", "code") if store.fingerprint.get(k) != now[k]]
    if stale:
        what = {"format": "its format", "zoo": "the zoo's models", "code": "the code that computes the lessons"}
        raise StoreError(f"{store.path} is stale: {' and '.join(what[k] for k in stale)} changed since it was "
                         "built (python -m gradreg lessons rebuilds it)")
    return store
