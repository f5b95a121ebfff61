"""The one training loop: plain, input-gradient regularized, and the paper's baselines.

Defences (Ross & Doshi-Velez 2018, arXiv 1711.09404, and PAPER.md §3): FGSM adversarial training from the
model's own predicted labels with a 50/50 clean/adversarial loss; defensive distillation at temperature T
(Papernot et al. 2016, arXiv 1511.04508: teacher on logits/T → soft labels → student, tested at T = 1);
PGD adversarial training (Madry et al. 2018, arXiv 1706.06083) as the non-masked reference.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import fgsm, pgd
from gradreg.core.config import TrainConfig
from gradreg.core.data import load_dataset
from gradreg.core.models import build_model, init_weights
from gradreg.evaluation.accuracy import accuracy, input_gradient_norms, predict_logits
from gradreg.training.checkpoints import Checkpoint, code_version
from gradreg.training.regularizers import LossTerms, loss_terms

N_GRAD_NORM = 500  # validation images used for the per-epoch mean input-gradient norm
# Seconds per epoch per 1 000 training images of a plain step on a 2-core CPU (small_cnn 8.5 s and paper_cnn 27 s
# per 55 000-image epoch; the narrower paper_cnn variants scaled by their multiply-adds), and the cost of each
# addition relative to a plain step.
PLAIN_SECONDS_PER_1K = {"small_cnn": 0.155, "paper_cnn": 0.49, "paper_cnn_h256": 0.45, "paper_cnn_h128": 0.44,
                        "paper_cnn_c16": 0.19, "paper_cnn_c16_h256": 0.16, "mlp": 0.05, "linear": 0.01}
REGULARIZER_COST = {"none": 1.0, "grad_y": 2.2, "grad_uniform": 2.2, "grad_fd": 2.6}  # benchmarks/results


@dataclass(frozen=True)
class EpochStats:
    """Per-epoch record; losses are means over the epoch's batches."""

    phase: str  # "train", or "teacher" / "student" for distillation
    epoch: int  # 1-based within the phase
    epochs: int
    loss: float
    ce: float
    penalty: float
    train_accuracy: float  # on the clean training batches, in training mode
    val_accuracy: float
    grad_norm: float  # mean ‖∇ₓ CE‖₂ on validation images, eval mode
    seconds: float


OnEpoch = Callable[[EpochStats], "bool | None"]  # return True to stop
OnBatch = Callable[[int, int, dict], "bool | None"]  # (batch, batches, running metrics); True to stop
OnEpochModel = Callable[[EpochStats, nn.Module], "bool | None"]  # the model in eval mode after each epoch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Where a run happens, for the record: ``"cuda: NVIDIA H200, torch 2.11.0"`` or ``"cpu: 2 threads, torch …"``."""
    where = (f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else
             f"cpu: {torch.get_num_threads()} threads" if device.type == "cpu" else device.type)
    return f"{where}, torch {torch.__version__}"


def estimate_seconds(config: TrainConfig, *, n_train: int = 55000) -> float:
    """A rough prior of the training steps' CPU time of ``config`` in seconds, from a fixed table (to order jobs).

    It ignores this machine's speed and load, validation, testing and data loading: the app's runs took ~3.5× as
    long. Use ``gradreg.training.timing`` (a probe of real steps on this machine) to promise or cap a run's time."""
    per_epoch = PLAIN_SECONDS_PER_1K[config.model] * (config.n_train or n_train) / 1000
    cost = REGULARIZER_COST[config.regularizer]
    cost = {"fgsm_at": cost + 1.6, "pgd_at": cost + 1.3 * config.adv_steps, "distill": 2 * cost}.get(
        config.defence, cost)
    return per_epoch * cost * config.epochs


def _batch_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor,
                 config: TrainConfig, temperature: float) -> LossTerms:
    """The loss of one batch under ``config``'s regularizer and defence (``target``: labels or soft labels)."""
    if config.defence == "pgd_at":
        x = pgd(model, x, y, eps=config.adv_eps, steps=config.adv_steps)
    terms = loss_terms(model, x, target, regularizer=config.regularizer, lam=config.lam, temperature=temperature)
    if config.defence != "fgsm_at":
        return terms
    # Predicted labels, not true ones, so the adversarial label cannot leak (Kurakin et al. 2017).
    x_adv = fgsm(model, x, terms.logits.detach().argmax(1), eps=config.adv_eps)
    adv_ce = F.cross_entropy(model(x_adv), y)
    return LossTerms(0.5 * terms.loss + 0.5 * adv_ce, terms.ce, terms.penalty, terms.logits)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               target: torch.Tensor, config: TrainConfig, *, temperature: float = 1.0) -> LossTerms:
    """One optimizer step on a batch ``x`` ``(B, C, H, W)``, labels ``y`` ``(B,)``, ``target`` (labels, or soft
    labels ``(B, K)`` for distillation's student) under ``config``'s regularizer and defence."""
    terms = _batch_terms(model, x, y, target, config, temperature)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    return terms


def _run_phase(model: nn.Module, data: dict, config: TrainConfig, *, phase: str, temperature: float,
               soft_targets: torch.Tensor | None, on_epoch: OnEpoch | None, on_batch: OnBatch | None,
               stop: threading.Event | None, on_epoch_model: OnEpochModel | None) -> tuple[list[dict], bool]:
    """Train ``model`` for ``config.epochs``; returns (history, completed)."""
    x, y = data["train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    generator = torch.Generator().manual_seed(config.seed)
    batches = (len(x) + config.batch_size - 1) // config.batch_size
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * batches)
                if config.lr_schedule == "cosine" else None)
    history = []
    for epoch in range(1, config.epochs + 1):
        # Sums stay on the device: reading them every batch would make a GPU wait for each step.
        start, sums, correct = time.perf_counter(), torch.zeros(3, device=x.device), torch.zeros((), device=x.device)
        model.train()
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for b in range(batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            target = soft_targets[idx] if soft_targets is not None else y[idx]
            terms = train_step(model, optimizer, x[idx], y[idx], target, config, temperature=temperature)
            if schedule is not None:
                schedule.step()
            sums += torch.stack([terms.loss, terms.ce, terms.penalty]).detach() * len(idx)
            correct += (terms.logits.argmax(1) == y[idx]).sum()
            halted = on_batch is not None and on_batch(b + 1, batches, _running(sums, correct, b, config, len(x)))
            if halted or (stop is not None and stop.is_set()):
                return history, False
        sums, correct = sums.cpu(), correct.item()
        stats = _epoch_stats(model, data, phase, epoch, config.epochs, sums / len(x), correct / len(x), start)
        history.append(asdict(stats))
        halted = on_epoch is not None and on_epoch(stats)
        if on_epoch_model is not None:
            model.eval()  # the next epoch switches back to training mode
            halted = on_epoch_model(stats, model) or halted
        if halted:
            return history, epoch == config.epochs
    return history, True


def _running(sums: torch.Tensor, correct: torch.Tensor, b: int, config: TrainConfig, n: int) -> dict:
    seen = min((b + 1) * config.batch_size, n)
    loss, _, penalty = sums.tolist()
    return {"loss": loss / seen, "penalty": penalty / seen, "accuracy": correct.item() / seen}


def _epoch_stats(model: nn.Module, data: dict, phase: str, epoch: int, epochs: int, means: torch.Tensor,
                 train_accuracy: float, start: float) -> EpochStats:
    xv, yv = data["val"]
    grad_norm = input_gradient_norms(model, xv[:N_GRAD_NORM], yv[:N_GRAD_NORM]).mean().item()
    return EpochStats(phase, epoch, epochs, means[0].item(), means[1].item(), means[2].item(), train_accuracy,
                      accuracy(model, xv, yv), grad_norm, time.perf_counter() - start)


def _load_splits(config: TrainConfig, device: torch.device) -> dict:
    train = load_dataset(config.dataset, "train", n=config.n_train, seed=config.seed)
    val = load_dataset(config.dataset, "val")
    return {"train": tuple(t.to(device) for t in train.tensors), "val": tuple(t.to(device) for t in val.tensors)}


def _model_kwargs(config: TrainConfig, data: dict) -> dict:
    x, y = data["train"]
    k = max(int(y.max().item()) + 1, int(data["val"][1].max().item()) + 1)
    return {"activation": config.activation, "num_classes": k, "in_channels": x.shape[1], "image_size": x.shape[-1],
            "bn_scale": config.bn_scale}


def _fresh_model(config: TrainConfig, kwargs: dict, device: torch.device) -> nn.Module:
    return init_weights(build_model(config.model, **kwargs), config.init).to(device)


def fresh_model(config: TrainConfig, data: dict, device: torch.device) -> nn.Module:
    """The untrained model ``train`` starts from for splits ``data`` (``{"train": (x, y), "val": (x, y)}``)."""
    return _fresh_model(config, _model_kwargs(config, data), device)


def train(config: TrainConfig, *, on_epoch: OnEpoch | None = None, on_batch: OnBatch | None = None,
          stop: threading.Event | None = None, on_epoch_model: OnEpochModel | None = None) -> Checkpoint:
    """Train the model ``config`` describes and return it as a (not yet saved) ``Checkpoint``.

    Args:
        config: what to train; the same config and seed give the same weights on the CPU.
        on_epoch: called with each ``EpochStats``; returning True stops after that epoch.
        on_batch: called after each batch with (batch, batches, running metrics); returning True stops there.
        stop: an event that, once set, stops training after the current batch.
        on_epoch_model: called after ``on_epoch`` with the stats and the model being trained, in eval mode, e.g. to
            evaluate it during training (PAPER.md §6: transferred-FGSM accuracy per epoch); it must not change the
            weights; returning True stops after that epoch. For distillation it sees the teacher, then the student.
    Returns:
        The checkpoint; ``complete`` is False when training was stopped early (its history says how far it got).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    data = _load_splits(config, device)
    kwargs = _model_kwargs(config, data)
    hooks = {"on_epoch": on_epoch, "on_batch": on_batch, "stop": stop, "on_epoch_model": on_epoch_model}
    soft_targets, history, temperature = None, [], 1.0
    if config.defence == "distill":
        temperature = config.temperature
        teacher = _fresh_model(config, kwargs, device)
        teacher_config = TrainConfig(**{**config.to_dict(), "regularizer": "none", "lam": 0.0})
        history, done = _run_phase(teacher, data, teacher_config, phase="teacher", temperature=temperature,
                                   soft_targets=None, **hooks)
        if not done:
            return _checkpoint(config, teacher, kwargs, history, False, started, device)
        soft_targets = F.softmax(predict_logits(teacher, data["train"][0]) / temperature, dim=1).to(device)
    model = _fresh_model(config, kwargs, device)
    phase_history, done = _run_phase(model, data, config, phase="student" if soft_targets is not None else "train",
                                     temperature=temperature, soft_targets=soft_targets, **hooks)
    return _checkpoint(config, model, kwargs, history + phase_history, done, started, device)


def _checkpoint(config: TrainConfig, model: nn.Module, kwargs: dict, history: list[dict], complete: bool,
                started: float, device: torch.device) -> Checkpoint:
    test = load_dataset(config.dataset, "test")
    metrics = {"test_accuracy": accuracy(model, *test.tensors)}
    if history:
        metrics["val_accuracy"] = history[-1]["val_accuracy"]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.eval()
    return Checkpoint(config, state, kwargs, history, metrics, complete, time.perf_counter() - started,
                      code_version(), trained_on=describe_device(device))
