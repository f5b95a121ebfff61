"""The pretrained zoo: the paper's model set, trained once, evaluated once, described by a manifest.

The set follows Ross & Doshi-Velez 2018 (arXiv 1711.09404) and PAPER.md §3: plain; Grad Reg (y) over a λ_eff
grid; Grad Reg (1/K); the finite-difference variant; FGSM adversarial training; defensive distillation; both
defences; and PGD adversarial training as the non-masked reference. Each model gets a *card* (accuracy under
white-box FGSM and PGD and under FGSM transferred from the plain model, gradient norms, confidence), so the
dashboard can show every model without recomputing anything.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from gradreg import checkpoints
from gradreg.attacks import apply_direction, eval_mode, step_direction
from gradreg.config import TrainConfig
from gradreg.data import load_dataset
from gradreg.evaluate import accuracy, input_gradient_norms, predict_logits, robust_accuracy

LAMBDA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # λ_eff
CARD_EPSILONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
REFERENCE = "plain"  # transferred examples are crafted on this entry, so it is trained first
OnEvent = Callable[[str, dict], None]  # (event, details): "train", "trained", "card"


def zoo_configs(dataset: str = "mnist", *, model: str = "small_cnn", epochs: int = 2, n_train: int | None = 30000,
                lams: tuple[float, ...] = LAMBDA_GRID, lam_defended: float = 10.0, lam_uniform: float = 1.0,
                seed: int = 0,
                batch_size: int = 128, lr: float = 1e-3) -> dict[str, TrainConfig]:
    """The default set, name → config; the plain model comes first.

    Args:
        lams: the Grad Reg (y) grid of λ_eff values.
        lam_defended: λ_eff of grad_fd and "both" (grad_y + FGSM adversarial training).
        lam_uniform: λ_eff of grad_uniform; its penalty is larger than grad_y's at the same λ (the authors' MNIST
            choices were ≈ 2 for 1/K against ≈ 110 for y).
    """
    common = {"dataset": dataset, "model": model, "epochs": epochs, "n_train": n_train, "seed": seed,
              "batch_size": batch_size, "lr": lr}
    configs = {REFERENCE: TrainConfig(**common)}
    configs |= {f"grad_y_{lam:g}": TrainConfig(**common, regularizer="grad_y", lam=lam) for lam in lams}
    configs |= {
        "grad_uniform": TrainConfig(**common, regularizer="grad_uniform", lam=lam_uniform),
        "grad_fd": TrainConfig(**common, regularizer="grad_fd", lam=lam_defended),
        "fgsm_at": TrainConfig(**common, defence="fgsm_at"),
        "distill": TrainConfig(**common, defence="distill"),
        "both": TrainConfig(**common, regularizer="grad_y", lam=lam_defended, defence="fgsm_at"),
        "pgd_at": TrainConfig(**common, defence="pgd_at"),
    }
    return configs


def _transfer_accuracy(model: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       epsilons: tuple[float, ...]) -> list[float]:
    with eval_mode(reference):
        direction = step_direction(reference, x, y)  # FGSM direction on the reference, computed once
    return [accuracy(model, apply_direction(x, direction, eps), y) for eps in epsilons]


def model_card(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, reference: nn.Module | None = None,
               epsilons: tuple[float, ...] = CARD_EPSILONS, pgd_steps: int = 20) -> dict:
    """Robustness and confidence summary of one model on ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``.

    Returns:
        ``{"n", "clean", "grad_norm", "max_prob", "other_log_prob", "curves": [{"eps", "fgsm", "pgd",
        "transfer_fgsm"}]}``; accuracies in [0, 1]; ``other_log_prob`` is the mean log-probability of the
        non-predicted classes (PAPER.md §6: ≈ −12 for Grad Reg vs ≈ −27 for plain); ``transfer_fgsm`` is None
        without a reference model.
    """
    fgsm = robust_accuracy(model, x, y, method="fgsm", epsilons=epsilons)
    pgd = robust_accuracy(model, x, y, method="pgd", epsilons=epsilons, steps=pgd_steps)
    transfer = (_transfer_accuracy(model, reference, x, y, epsilons) if reference is not None
                else [None] * len(epsilons))
    log_probs = F.log_softmax(predict_logits(model, x), dim=1)
    others = log_probs.clone().scatter_(1, log_probs.argmax(1, keepdim=True), float("nan"))
    curves = [{"eps": eps, "fgsm": f["accuracy"], "pgd": p["accuracy"], "transfer_fgsm": t}
              for eps, f, p, t in zip(epsilons, fgsm, pgd, transfer)]
    return {"n": len(x), "clean": accuracy(model, x, y), "grad_norm": input_gradient_norms(model, x, y).mean().item(),
            "max_prob": log_probs.max(1).values.exp().mean().item(),
            "other_log_prob": others.nanmean().clamp_min(-1e4).item(), "curves": curves}


def build_zoo(configs: Mapping[str, TrainConfig], *, out: str | Path = checkpoints.SHIPPED_DIR, n_eval: int = 256,
              on_event: OnEvent | None = None, **train_kwargs) -> dict:
    """Train (or load) every config into ``out``, compute its card, and write ``out/manifest.json`` atomically.

    Args:
        configs: name → config, e.g. ``zoo_configs()``; the entry named ``"plain"``, if any, is the transfer source.
        n_eval: the first ``n_eval`` test images are used for the cards (the paper's protocol uses 256).
        train_kwargs: passed to ``train`` (``on_epoch``, ``on_batch``, ``stop``).
    Returns:
        The manifest: ``{"format_version", "dataset", "n_eval", "built_seconds", "models": [...]}``.
    """
    out, emit, started = Path(out), on_event or (lambda event, details: None), time.perf_counter()
    names = sorted(configs, key=lambda name: name != REFERENCE)
    datasets = {configs[name].dataset for name in names}
    if len(datasets) != 1:
        raise ValueError(f"a zoo holds one dataset, got {sorted(datasets)}")
    x, y = load_dataset(datasets.pop(), "test").tensors
    entries, reference = [], None
    for name in names:
        emit("train", {"name": name, "id": checkpoints.config_id(configs[name])})
        ckpt = checkpoints.load_or_train(configs[name], root=out, **train_kwargs)
        if not ckpt.complete:
            raise RuntimeError(f"training of {name!r} was stopped; the zoo is incomplete")
        model = ckpt.build()
        emit("trained", {"name": name, "id": ckpt.id, "seconds": ckpt.train_seconds})
        card = model_card(model, x[:n_eval], y[:n_eval], reference=reference)
        reference = model if name == REFERENCE else reference
        entries.append({"name": name, "id": ckpt.id, "file": f"{ckpt.id}{checkpoints.SUFFIX}",
                        "config": ckpt.config.to_dict(), "test_accuracy": ckpt.metrics["test_accuracy"],
                        "train_seconds": round(ckpt.train_seconds, 1), "code_version": ckpt.code_version,
                        "card": card})
        emit("card", {"name": name, "card": card})
    manifest = {"format_version": 1, "dataset": configs[names[0]].dataset, "n_eval": n_eval,
                "built_seconds": round(time.perf_counter() - started, 1), "models": entries}
    write_manifest(manifest, out)
    return manifest


def write_manifest(manifest: dict, out: str | Path) -> Path:
    """Write ``out/manifest.json`` through a temporary file and a rename."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(manifest, handle, indent=1)
        os.replace(tmp, out / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out / MANIFEST


def default_dir(dataset: str = "mnist") -> Path:
    """Where the shipped zoo of ``dataset`` lives: ``checkpoints/`` for MNIST (the app's default), else
    ``checkpoints/<dataset>/`` (so building another dataset's zoo never overwrites the MNIST manifest)."""
    return checkpoints.SHIPPED_DIR if dataset == "mnist" else checkpoints.SHIPPED_DIR / dataset


def read_manifest(root: str | Path = checkpoints.SHIPPED_DIR) -> dict | None:
    """The manifest in ``root``, or None when there is none; ``ValueError`` when it is malformed."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise ValueError(f"{path}: not a gradreg zoo manifest")
    return manifest
