"""Datasets: the embedded MNIST and its checksums, splits, stratified subsets, clear errors."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from gradreg.core import data
from gradreg.core.data import (MNIST_MD5, CorruptDataset, DatasetUnavailable, load_dataset, load_raw, read_idx_dir,
                               stratified_indices)


@pytest.fixture(scope="module")
def mnist_raw():
    return load_raw("mnist")


def test_embedded_mnist_matches_checksums_and_counts(mnist_raw):
    assert mnist_raw.train_x.shape == (60000, 28, 28) and mnist_raw.test_x.shape == (10000, 28, 28)
    counts = np.bincount(mnist_raw.train_y, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_splits_follow_the_paper():
    val = load_dataset("mnist", "val")
    test = load_dataset("mnist", "test", n=100)
    x, y = val.tensors
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
    assert len(test) == 100


def test_stratified_subset_is_deterministic_and_proportional():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    a = stratified_indices(labels, 10, seed=1)
    assert torch.equal(a, stratified_indices(labels, 10, seed=1))
    assert torch.bincount(labels[a]).tolist() == [5, 3, 2]
    assert not torch.equal(a, stratified_indices(labels, 10, seed=2))


def test_corrupted_file_is_named(tmp_path):
    for name in MNIST_MD5:
        shutil.copy(data.ASSETS / f"{name}.gz", tmp_path / f"{name}.gz")
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(victim.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    victim.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(CorruptDataset, match="t10k-labels-idx1-ubyte.gz.*md5"):
        read_idx_dir(tmp_path, checksums=MNIST_MD5)


def test_garbage_file_gets_a_clear_error(tmp_path):
    for name in MNIST_MD5:
        (tmp_path / name).write_bytes(b"not an idx file at all")
    with pytest.raises(CorruptDataset, match="magic number"):
        read_idx_dir(tmp_path)


def test_missing_fashion_mnist_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_DIRS", (tmp_path / "nowhere",))
    monkeypatch.delenv("GRADREG_FASHION_MNIST_DIR", raising=False)

    def offline(name):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_torchvision", offline)
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", "test")


def test_user_idx_directory(tmp_path, monkeypatch):
    for name in MNIST_MD5:
        shutil.copy(data.ASSETS / f"{name}.gz", tmp_path / f"{name}.gz")
    monkeypatch.setenv("GRADREG_IDX_DIR", str(tmp_path))
    x, y = load_dataset("idx", "test", n=50).tensors
    assert x.shape == (50, 1, 28, 28)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="mnist"):
        load_dataset("cifar10", "train")
    with pytest.raises(ValueError, match="val"):
        load_dataset("synthetic", "validation")
