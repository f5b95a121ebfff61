"""Datasets as ``(N, 1, 28, 28)`` float32 images in [0, 1] with int64 labels; a ``DATASETS`` registry.

MNIST (LeCun, Cortes & Burges) ships in ``gradreg/assets/mnist`` and is verified against its md5 sums.
Splits follow the paper's notebooks: the first 55 000 training images train, the last 5 000 validate, and the
official 10 000 test images test. Normalization is never applied here, so attacks can clamp to [0, 1].
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

SPLITS = ("train", "val", "test")
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "mnist"  # gradreg/assets, beside the packages
FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
CACHE_DIR = Path(os.environ.get("GRADREG_DATA_DIR", Path.home() / ".cache" / "gradreg" / "data"))
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# md5 of the *uncompressed* IDX files of the original MNIST distribution.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
N_VAL = 5000  # the paper's notebooks hold out the last 5 000 training images


class DatasetUnavailable(RuntimeError):
    """A dataset's files are not on this machine and could not be fetched; the message says how to get them."""


class CorruptDataset(RuntimeError):
    """A dataset file exists but is damaged; the message names the file."""


@dataclass(frozen=True)
class Raw:
    """Full official train and test sets as uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptDataset(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) != offset + int(np.prod(shape)):
        raise CorruptDataset(f"{path}: size {len(raw)} bytes does not match its header shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _read_idx(directory: Path, name: str, md5: str | None) -> np.ndarray:
    for path in (directory / f"{name}.gz", directory / name):
        if not path.is_file():
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise CorruptDataset(f"{path}: cannot be decompressed ({err}); replace the file") from err
        if md5 is not None and hashlib.md5(raw).hexdigest() != md5:
            raise CorruptDataset(f"{path}: md5 checksum mismatch (expected {md5}); the file is corrupt, replace it")
        return _parse_idx(raw, path)
    raise FileNotFoundError(f"{directory}: no {name}(.gz)")


def read_idx_dir(directory: str | Path, *, checksums: dict[str, str] | None = None) -> Raw:
    """Read the four MNIST-format IDX files (gzipped or not) from a directory."""
    directory = Path(directory)
    arrays = {key: _read_idx(directory, name, (checksums or {}).get(name)) for key, name in IDX_NAMES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptDataset(f"{directory}: {part} images {images.shape} and labels {labels.shape} do not match")
    return Raw(arrays["train_images"], arrays["train_labels"].astype(np.int64),
               arrays["test_images"], arrays["test_labels"].astype(np.int64))


def _mnist() -> Raw:
    return read_idx_dir(ASSETS, checksums=MNIST_MD5)


def _idx_dirs(env: str, defaults) -> list[Path]:
    dirs = [Path(os.environ[env])] if os.environ.get(env) else []
    return dirs + list(defaults)


def _torchvision(name: str) -> Raw:
    """Download through torchvision (works only online); a short socket timeout so offline fails fast."""
    import torchvision

    cls = getattr(torchvision.datasets, name)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        sets = [cls(root=str(CACHE_DIR), train=train, download=True) for train in (True, False)]
    finally:
        socket.setdefaulttimeout(old)
    return Raw(*(np.asarray(a) for s in sets for a in (s.data, s.targets)))


def _from_dirs_or_download(name: str, env: str, defaults, tv_name: str, how: str) -> Raw:
    for directory in _idx_dirs(env, defaults):
        if directory.is_dir():
            try:
                return read_idx_dir(directory)
            except FileNotFoundError:
                continue
    try:
        return _torchvision(tv_name)
    except Exception as err:  # any network or parsing failure means "not available here"
        searched = ", ".join(str(d) for d in _idx_dirs(env, defaults)) or "(none)"
        raise DatasetUnavailable(
            f"dataset {name!r} is not available: no IDX files in {searched}, and the download failed ({err}). "
            f"{how}"
        ) from None


def _fashion_mnist() -> Raw:
    return _from_dirs_or_download(
        "fashion_mnist", "GRADREG_FASHION_MNIST_DIR", FASHION_DIRS, "FashionMNIST",
        "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set "
        "GRADREG_FASHION_MNIST_DIR to a directory holding its four IDX files, or run once online.",
    )


def _kmnist() -> Raw:
    return _from_dirs_or_download(
        "kmnist", "GRADREG_KMNIST_DIR", (), "KMNIST",
        "Set GRADREG_KMNIST_DIR to a directory holding its four IDX files, or run once online.",
    )


def _idx() -> Raw:
    directory = os.environ.get("GRADREG_IDX_DIR")
    if not directory:
        raise DatasetUnavailable("dataset 'idx' reads MNIST-format IDX files from the directory in GRADREG_IDX_DIR "
                                 "(or pass root=...); the variable is not set")
    try:
        return read_idx_dir(directory)
    except FileNotFoundError as err:
        raise DatasetUnavailable(f"dataset 'idx': {err}") from None


def _synthetic(n_train: int = 600, n_test: int = 200, k: int = 10, seed: int = 1234) -> Raw:
    """A tiny learnable set for tests: each class is a bright bar at its own place, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % k
        x = rng.uniform(0, 60, size=(n, 28, 28))
        for c in range(k):
            row = 3 + 2 * c
            x[y == c, row : row + 3, 4:24] += 160
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    return Raw(*make(n_train), *make(n_test))


DATASETS: dict[str, Callable[[], Raw]] = {
    "mnist": _mnist,
    "fashion_mnist": _fashion_mnist,
    "kmnist": _kmnist,
    "idx": _idx,
    "synthetic": _synthetic,
}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")


def load_raw(name: str, *, root: str | Path | None = None) -> Raw:
    """The full official train/test arrays of a dataset (``root`` reads IDX files from that directory)."""
    _check_name(name)
    return read_idx_dir(root) if root is not None else DATASETS[name]()


def stratified_indices(labels: torch.Tensor, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` indices into ``labels`` with class proportions kept (largest remainder), in ascending order."""
    if not 1 <= n <= len(labels):
        raise ValueError(f"n must be between 1 and {len(labels)}, got {n}")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / len(labels)
    take = exact.floor().long()
    remainder_order = torch.argsort(exact - take, descending=True, stable=True)
    take[remainder_order[: n - int(take.sum())]] += 1
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.sort(torch.cat(chosen)).values


def val_size(n_official_train: int) -> int:
    """How many of a dataset's ``n_official_train`` official training images its ``"val"`` split holds (the last
    ones): 5 000 as in the paper's notebooks, a tenth for small sets."""
    return N_VAL if n_official_train > 4 * N_VAL else n_official_train // 10


def load_dataset(name: str, split: str = "train", *, n: int | None = None, seed: int = 0,
                 root: str | Path | None = None) -> TensorDataset:
    """Load a split as a ``TensorDataset`` of images ``(N, 1, 28, 28)`` float32 in [0, 1] and labels int64.

    Args:
        name: a key of ``DATASETS``.
        split: ``"train"`` (all but the last 5 000 training images), ``"val"`` (those 5 000) or ``"test"``.
        n: optional size of a deterministic, class-stratified subset.
        seed: seed of that subset.
        root: optional directory of MNIST-format IDX files to read instead of the registry's source.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    raw = load_raw(name, root=root)
    n_val = val_size(len(raw.train_x))
    images, labels = {
        "train": (raw.train_x[: len(raw.train_x) - n_val], raw.train_y[: len(raw.train_y) - n_val]),
        "val": (raw.train_x[len(raw.train_x) - n_val :], raw.train_y[len(raw.train_y) - n_val :]),
        "test": (raw.test_x, raw.test_y),
    }[split]
    x = torch.from_numpy(np.array(images)).float().div_(255).unsqueeze(1)  # np.array: a writable copy
    y = torch.from_numpy(np.array(labels)).long()
    if n is not None and n < len(y):
        keep = stratified_indices(y, n, seed=seed)
        x, y = x[keep], y[keep]
    return TensorDataset(x, y)


def dataset_status() -> list[dict]:
    """Which datasets load on this machine: ``[{name, available, detail}]`` (never raises)."""
    rows = []
    for name in sorted(DATASETS):
        try:
            raw = DATASETS[name]()
            rows.append({"name": name, "available": True,
                         "detail": f"{len(raw.train_x)} train + {len(raw.test_x)} test images"})
        except (DatasetUnavailable, CorruptDataset) as err:
            rows.append({"name": name, "available": False, "detail": str(err)})
    return rows
