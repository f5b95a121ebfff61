"""Seconds per training step for each regularizer and defence, as a ratio to a plain step of the same model.

Steps of all variants are interleaved (round-robin over several rounds) so that load from other processes hits
them alike; the median over rounds is reported. Run: ``python -m benchmarks.train_steps [--model paper_cnn]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradreg.config import TrainConfig
from gradreg.data import load_dataset
from gradreg.models import build_model
from gradreg.train import _batch_terms

VARIANTS = {
    "plain": {},
    "grad_y": {"regularizer": "grad_y", "lam": 10.0},
    "grad_uniform": {"regularizer": "grad_uniform", "lam": 1.0},
    "grad_fd": {"regularizer": "grad_fd", "lam": 10.0},
    "fgsm_at": {"defence": "fgsm_at"},
}


def _step_seconds(model, optimizer, x, y, config: TrainConfig, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        terms = _batch_terms(model, x, y, y, config, 1.0)
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def measure(*, model: str = "small_cnn", batch_size: int = 128, rounds: int = 5, steps: int = 5,
            n_train: int = 55000) -> list[dict]:
    """Median seconds per step per variant and its ratio to plain; seconds per epoch of ``n_train`` images."""
    x, y = load_dataset("mnist", "train", n=batch_size).tensors
    setups = {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(0)
        net = build_model(model).train()
        setups[name] = (net, torch.optim.Adam(net.parameters(), lr=1e-3),
                        TrainConfig(model=model, batch_size=batch_size, **overrides))
    for net, optimizer, config in setups.values():
        _step_seconds(net, optimizer, x, y, config, 1)  # warm-up
    times = {name: [] for name in setups}
    for _ in range(rounds):
        for name, (net, optimizer, config) in setups.items():
            times[name].append(_step_seconds(net, optimizer, x, y, config, steps))
    plain = statistics.median(times["plain"])
    batches = -(-n_train // batch_size)
    return [{"variant": name, "model": model, "batch_size": batch_size, "seconds_per_step": statistics.median(t),
             "ratio_to_plain": statistics.median(t) / plain, "seconds_per_epoch": statistics.median(t) * batches}
            for name, t in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = measure(model=args.model, batch_size=args.batch_size, rounds=args.rounds)
    print(f"| variant | s/step | × plain | s/epoch (55 000 images) |  ({args.model}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads)")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['seconds_per_step']:.4f} | {row['ratio_to_plain']:.2f} | "
              f"{row['seconds_per_epoch']:.1f} |")


if __name__ == "__main__":
    main()
