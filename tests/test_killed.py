"""Nothing half-written: a real training process SIGKILLed at random moments leaves no checkpoint that lists as
usable but fails to load, and the next run recovers (no stale lock blocks it; stale temp files are removed).

The child trains tiny synthetic configs with ``load_or_train`` and saves each result several more times, so the
kills land in training, in the middle of writes, and while the same-config lock is held. The default run kills it
5 times; ``-m slow`` kills it 20 times.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gradreg.core.config import TrainConfig, config_id
from gradreg.training import checkpoints
from gradreg.training.checkpoints import is_scratch, list_checkpoints, load

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)  # the child cycles through these configs: later runs overwrite earlier files

CHILD = r"""
import sys, torch
torch.set_num_threads(1)
from gradreg.core.config import TrainConfig
from gradreg.training import checkpoints
from gradreg.training.reuse import load_or_train
root, once = sys.argv[1], sys.argv[2] == "once"
print("ready", flush=True)
for i in range(3 if once else 10**6):
    config = TrainConfig(dataset="synthetic", model="small_cnn", epochs=1, batch_size=64, n_train=200, seed=i % 3)
    print("train", i, flush=True)
    ckpt = load_or_train(config, root=root)
    for _ in range(0 if once else 4):  # rewrite it: kills land mid-write too
        print("save", i, flush=True)
        checkpoints.save(ckpt, root)
print("done", flush=True)
"""


def _config(seed: int) -> TrainConfig:
    return TrainConfig(dataset="synthetic", model="small_cnn", epochs=1, batch_size=64, n_train=200, seed=seed)


def _child(root: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADREG_CHECKPOINT_DIR": str(root)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


def _check_directory(root: Path, x: torch.Tensor) -> None:
    """Every file is a hidden scratch file (ignored by listings) or a checkpoint that loads with good weights."""
    listed = {info.path.name: info for info in list_checkpoints(root)}
    for path in root.iterdir():
        if is_scratch(path):
            assert path.name not in listed
            continue
        info = listed[path.name]
        assert info.ok, f"{path.name} was left unusable: {info.reason}"
        ckpt = load(path)
        assert path.stem == ckpt.id == config_id(ckpt.config) and ckpt.complete
        assert bool(torch.isfinite(ckpt.build()(x)).all())


def _kill_repeatedly(root: Path, kills: int, x: torch.Tensor) -> dict[str, int]:
    rng, phases = random.Random(1234), {}
    for _ in range(kills):
        child = _child(root, "loop")
        assert child.stdout.readline().strip() == "ready"  # imports done: from here every moment is fair game
        time.sleep(rng.uniform(0.0, 2.0))
        child.send_signal(signal.SIGKILL)
        rest = child.communicate(timeout=60)[0].split()
        assert child.returncode == -signal.SIGKILL, rest
        phase = rest[-2] if len(rest) >= 2 else "start"
        phases[phase] = phases.get(phase, 0) + 1
        _check_directory(root, x)
    return phases


def _recover(root: Path, x: torch.Tensor) -> None:
    """A fresh process finishes every config (no stale lock blocks it), and then nothing is left over."""
    child = _child(root, "once")
    out = child.communicate(timeout=300)[0]
    assert child.returncode == 0 and out.strip().endswith("done"), out
    _check_directory(root, x)
    for seed in SEEDS:
        checkpoints.save(load(root / f"{config_id(_config(seed))}.safetensors"), root)  # cleans stale temps
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{config_id(_config(s))}.safetensors" for s in SEEDS)


def test_sigkill_during_training_and_saving_leaves_nothing_half_written(tmp_path, synthetic):
    phases = _kill_repeatedly(tmp_path, 5, synthetic[0][:8])
    _recover(tmp_path, synthetic[0][:8])
    print("kills by phase:", phases)


@pytest.mark.slow
def test_twenty_sigkills(tmp_path, synthetic):
    phases = _kill_repeatedly(tmp_path, 20, synthetic[0][:8])
    _recover(tmp_path, synthetic[0][:8])
    print("kills by phase:", phases)
    assert phases.get("save", 0) >= 1 and phases.get("train", 0) >= 1, phases
