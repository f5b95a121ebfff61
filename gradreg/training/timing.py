"""How long a training run takes on this machine: a short probe of the config's real training step and evaluations,
and the estimate built from it.

``loop.estimate_seconds`` is a fixed table of step costs (a prior, to order jobs); it ignored the machine's speed and
load and every cost outside the steps (validation each epoch, the final test, reading the data three times), and
the app's runs took ~3.5× as long as it promised. ``probe`` times the same functions ``train`` calls, on the same
device and thread count; ``estimate`` adds them up the way ``train`` spends them. The probe keeps no state: a fresh
model, its own optimizer, the global random state restored, nothing written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gradreg.core.config import TrainConfig
from gradreg.core.data import load_raw, val_size
from gradreg.evaluation.accuracy import EVAL_BATCH, accuracy, input_gradient_norms, predict_logits
from gradreg.training.loop import N_GRAD_NORM, fresh_model, resolve_device, train_step

PROBE_BUDGET = 0.3  # seconds of timed training steps; at least one step is timed, whatever it costs
MAX_STEPS = 4
# Evaluation is timed at the batch size the run uses: per image, a 1 000-image forward pass took twice as long as a
# 256-image one on a 2-core CPU (the activations leave the cache), and validation plus test are most of a short run.
N_EVAL = EVAL_BATCH
N_GRAD = 128  # images whose input-gradient norm is timed (the run's diagnostic takes 500 per epoch: a small share)
LOADS_PER_RUN = 3  # train reads the train, val and test splits, each from the raw files


@dataclass(frozen=True)
class StepCosts:
    """What the parts of a run cost on this machine, measured just now (seconds per image unless said)."""

    train: float  # one training step of the config (forward, penalty, defence, backward, Adam)
    teacher: float  # a plain step of distillation's teacher; 0.0 without distillation
    predict: float  # an eval-mode forward pass (validation and test accuracy, distillation's soft labels)
    grad_norm: float  # the per-epoch ‖∇ₓ CE‖₂ diagnostic on validation images
    load: float  # seconds to read the dataset's files once
    n_train: int  # the sizes of the dataset's train (all of it), val and test splits
    n_val: int
    n_test: int
    device: str  # where it was measured, e.g. "cpu (1 thread)" or "cuda"


def cost_config(config: TrainConfig) -> TrainConfig:
    """``config`` with what does not change a step's cost set to fixed values (λ's size, epochs, seed, lr, a
    training set at least one batch big), so that configs of equal cost share one probe (a cache key)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    small = config.n_train is not None and config.n_train < config.batch_size  # its one batch is smaller
    return replace(config, lam=0.0 if config.regularizer == "none" else 1.0, epochs=1, seed=0, lr=1e-3,
                   n_train=config.n_train if small else None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(work: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - start


def _step_seconds(model: torch.nn.Module, config: TrainConfig, x: torch.Tensor, y: torch.Tensor,
                  target: torch.Tensor, temperature: float, budget: float) -> float:
    """Seconds per image of ``train_step`` on batch ``x`` after one untimed warm-up step of the same size (the
    first step allocates; it ran ~1.5× slower)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    model.train()

    def step() -> None:
        train_step(model, optimizer, x, y, target, config, temperature=temperature)

    step()
    spent, steps = 0.0, 0
    while steps == 0 or (spent < budget and steps < MAX_STEPS):
        spent += _seconds(step, x.device)
        steps += 1
    return spent / (steps * len(x))


def _eval_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Seconds per image of validation accuracy and of the gradient-norm diagnostic (after a small warm-up)."""
    model.eval()
    accuracy(model, x[:8], y[:8])
    predict = _seconds(lambda: accuracy(model, x[:N_EVAL], y[:N_EVAL]), x.device) / len(x[:N_EVAL])
    input_gradient_norms(model, x[:8], y[:8])
    grad = _seconds(lambda: input_gradient_norms(model, x[:N_GRAD], y[:N_GRAD]), x.device) / len(x[:N_GRAD])
    return predict, grad


def probe(config: TrainConfig, *, budget: float = PROBE_BUDGET) -> StepCosts:
    """Time ``config``'s training step, evaluations and data loading on this machine, now (1–2 s on a 2-core CPU).

    Args:
        config: the run to time; its device and this process's thread count are the ones measured.
        budget: seconds of timed training steps (at least one step, at most ``MAX_STEPS``).
    Returns:
        The measured ``StepCosts``; nothing is trained, saved or left changed.
    """
    config = cost_config(config)
    if not budget > 0:
        raise ValueError(f"budget must be > 0 seconds, got {budget!r}")
    device = resolve_device(config.device)
    start = time.perf_counter()
    raw = load_raw(config.dataset)
    load = time.perf_counter() - start
    n_val = val_size(len(raw.train_x))
    n_train = len(raw.train_x) - n_val
    batch = min(config.batch_size, config.n_train or n_train, n_train)
    images = raw.train_x[-max(batch, min(N_EVAL, n_val)):]  # real images of the val split (one eval batch)
    x = torch.from_numpy(np.array(images)).float().div_(255).unsqueeze(1).to(device)
    y = torch.from_numpy(np.array(raw.train_y[-len(images):])).long().to(device)
    splits = {"train": (x, torch.from_numpy(raw.train_y)), "val": (x, torch.from_numpy(raw.test_y))}  # K classes
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        model = fresh_model(config, splits, device)
        teacher, temperature, target = 0.0, 1.0, y[:batch]
        if config.defence == "distill":
            teacher_config = replace(config, regularizer="none", lam=0.0)
            teacher = _step_seconds(fresh_model(teacher_config, splits, device), teacher_config, x[:batch],
                                    y[:batch], y[:batch], 1.0, budget)
            temperature = config.temperature
            target = F.softmax(predict_logits(model, x[:batch]) / temperature, dim=1).to(device)
        train = _step_seconds(model, config, x[:batch], y[:batch], target, temperature, budget)
        predict, grad = _eval_seconds(model, x, y)
    where = f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''})"
    return StepCosts(train, teacher, predict, grad, load, n_train, n_val, len(raw.test_x),
                     where if device.type == "cpu" else device.type)


def estimate(config: TrainConfig, costs: StepCosts) -> float:
    """Seconds ``train(config)`` takes at the measured ``costs``: per epoch the steps over the training images,
    validation accuracy and the gradient-norm diagnostic; distillation's teacher phase and soft labels; the final
    test accuracy; and reading the data. The checkpoint's save is not included (it is the caller's)."""
    n = min(config.n_train or costs.n_train, costs.n_train)
    validation = costs.n_val * costs.predict + min(N_GRAD_NORM, costs.n_val) * costs.grad_norm
    seconds = config.epochs * (n * costs.train + validation)
    if config.defence == "distill":
        seconds += config.epochs * (n * costs.teacher + validation) + n * costs.predict
    return LOADS_PER_RUN * costs.load + seconds + costs.n_test * costs.predict


def measured_seconds(config: TrainConfig) -> float:
    """``estimate`` at costs probed now: how long ``train(config)`` should take on this machine."""
    return estimate(config, probe(config))
