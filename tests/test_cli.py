"""CLI smoke tests: train → list → data in real subprocesses; bad arguments exit 2 with the valid choices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradreg.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradreg", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_train_then_list(tmp_path):
    env = {"GRADREG_CHECKPOINT_DIR": str(tmp_path)}
    result = _run("train", "--dataset", "synthetic", "--epochs", "1", "--n-train", "200", "--regularizer",
                  "grad_fd", "--lam", "0.5", env=env)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and str(tmp_path) in result.stdout
    (path,) = tmp_path.glob("*.safetensors")
    again = _run("train", "--dataset", "synthetic", "--epochs", "1", "--n-train", "200", "--regularizer",
                 "grad_fd", "--lam", "0.5", env=env)
    assert again.returncode == 0 and "epoch 1/1" not in again.stderr  # loaded, not retrained
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04junk")
    listing = _run("list", "--dir", str(tmp_path))
    assert listing.returncode == 0
    assert path.stem in listing.stdout and "UNUSABLE" in listing.stdout and "junk.pt" in listing.stdout


def test_data_lists_the_embedded_mnist():
    result = _run("data")
    assert result.returncode == 0
    assert any(line.startswith("yes") and "mnist " in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("args,needle", [
    (["train", "--lam", "-1"], "finite number >= 0"),
    (["train", "--lam", "nan"], "finite number >= 0"),
    (["train", "--model", "resnet"], "small_cnn"),
    (["train", "--regularizer", "l1"], "grad_y"),
    (["train", "--lam", "3"], "needs a regularizer"),
    (["frobnicate"], "train"),
])
def test_bad_arguments_exit_2_with_valid_choices(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and needle in capsys.readouterr().err


def test_bad_arguments_exit_2_in_a_real_process():
    result = _run("train", "--lam", "-1")
    assert result.returncode == 2 and "finite number >= 0" in result.stderr and "Traceback" not in result.stderr
