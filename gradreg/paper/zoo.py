"""The pretrained zoo: the paper's model set, trained once, evaluated once, described by a manifest.

The set follows Ross & Doshi-Velez 2018 (arXiv 1711.09404) and PAPER.md §3: plain; Grad Reg (y) over a λ_eff
grid; Grad Reg (1/K); the finite-difference variant; FGSM adversarial training; defensive distillation; both
defences; and PGD adversarial training as the non-masked reference. Each model gets a *card* (accuracy under
white-box FGSM and PGD and under FGSM transferred from the plain model, gradient norms, confidence), so the
dashboard can show every model without recomputing anything.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import single_step_sweep
from gradreg.core.config import RECIPES, TrainConfig
from gradreg.core.data import load_dataset
from gradreg.core.models import DEFAULT_MODEL
from gradreg.evaluation.accuracy import accuracy, input_gradient_norms, predict_logits, robust_accuracy
from gradreg.training import checkpoints, zoo_jobs
from gradreg.training.files import write_json

LAMBDA_GRID = (1.0, 10.0, 30.0, 110.0, 300.0, 1000.0)  # λ_eff, around the authors' 110
AUTHORS_LAM = 110.0  # the authors' MNIST Grad Reg (y) λ: λ_TF 56234 / 512 (PAPER.md §1)
AUTHORS_LAM_UNIFORM = 2.0  # … and their Grad Reg (1/K) λ
CARD_EPSILONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
REFERENCE = "plain"  # transferred examples are crafted on this entry, so it is trained first
SEEDS_DIR = "seeds"  # replicas with other seeds live here, out of the app's listings
CURVE_SUFFIX = ".curve.json"
OnEvent = Callable[[str, dict], None]  # (event, details): "train", "trained", "card"


@dataclass(frozen=True)
class Preset:
    """A zoo's network and training schedule (every entry shares them, so the λ grid compares like with like)."""

    model: str
    epochs: int
    n_train: int | None  # None: all 55 000 training images
    batch_size: int
    lr: float
    lr_schedule: str
    seeds: int  # Normal and Grad Reg (y) at the authors' λ are trained with seeds 0 … seeds − 1
    about: str


PRESETS = {
    "cpu": Preset(DEFAULT_MODEL, 3, None, 128, 1e-3, "cosine", 3,
                  "the shipped zoo: 3 epochs of all 55 000 images, batch 128, Adam lr 1e-3 with cosine decay (PAPER.md "
                  "§3 allows a shorter run with a higher lr on a CPU; about 2 h for the MNIST zoo on 2 cores)"),
    "paper": Preset(DEFAULT_MODEL, 70, None, 256, 2e-4, "constant", 3,
                    "the authors' schedule: 70 epochs of all 55 000 images, batch 256, Adam lr 2e-4 constant (a GPU "
                    "run; on an H200 the zoo needs more than 30 min with 10 trainings sharing the GPU)"),
}


def zoo_configs(dataset: str = "mnist", *, preset: str = "cpu", lams: tuple[float, ...] = LAMBDA_GRID,
                lam_defended: float = AUTHORS_LAM, lam_uniform: float = AUTHORS_LAM_UNIFORM, seed: int = 0,
                recipe: str = "authors", **schedule) -> dict[str, TrainConfig]:
    """The default set, name → config; the plain model comes first.

    Args:
        preset: a key of ``PRESETS`` (network and schedule); ``schedule`` overrides its fields (``model``,
            ``epochs``, ``n_train``, ``batch_size``, ``lr``, ``lr_schedule``).
        lams: the Grad Reg (y) grid of λ_eff values.
        lam_defended: λ_eff of grad_fd and "both" (grad_y + FGSM adversarial training).
        lam_uniform: λ_eff of grad_uniform; its penalty is larger than grad_y's at the same λ (the authors' MNIST
            choices were ≈ 2 for 1/K against ≈ 110 for y).
        recipe: a key of ``config.RECIPES`` (init, BatchNorm scale, Adam ε).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    common = {"dataset": dataset, "seed": seed, **RECIPES[recipe], **_schedule(preset, schedule)}
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


def _schedule(preset: str, overrides: dict) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"unknown zoo preset {preset!r}; valid: {', '.join(PRESETS)}")
    values = {k: v for k, v in asdict(PRESETS[preset]).items() if k not in ("seeds", "about")}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"unknown schedule fields {unknown}; valid: {', '.join(values)}")
    return values | overrides


def replica_configs(configs: Mapping[str, TrainConfig], *, seeds: int,
                    names: tuple[str, ...] = (REFERENCE, f"grad_y_{AUTHORS_LAM:g}")) -> dict[str, TrainConfig]:
    """``names``' configs again with seeds 1 … ``seeds`` − 1 (``"<name>-seed<k>"`` → config), for the spread."""
    return {f"{name}-seed{k}": replace(configs[name], seed=configs[name].seed + k)
            for name in names if name in configs for k in range(1, seeds)}


def _transfer_accuracy(model: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       epsilons: tuple[float, ...]) -> list[float]:
    return [accuracy(model, x_adv, y) for x_adv in single_step_sweep(reference, x, y, epsilons=epsilons)]


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
              replicas: Mapping[str, TrainConfig] | None = None, workers: int = 1, train_only: bool = False,
              about: dict | None = None, on_event: OnEvent | None = None, **train_kwargs) -> dict | None:
    """Train (or load) every config into ``out``, compute its card, and write ``out/manifest.json`` atomically.

    Args:
        configs: name → config, e.g. ``zoo_configs()``; the entry named ``"plain"``, if any, is the transfer source.
        n_eval: the first ``n_eval`` test images are used for the cards (the paper's protocol uses 256).
        replicas: more seeds of some entries (``replica_configs``), trained into ``out/seeds/`` and listed under
            the manifest's ``"replicas"``; the first replica of plain and of the authors' Grad Reg (y) records
            its training curve.
        workers: train in this many processes at once (``gradreg.training.zoo_jobs``); 1 trains here.
        train_only: train and stop: no cards, no manifest (e.g. on a borrowed GPU; cards are computed later
            where the zoo is used, from the stored weights).
        about: recorded in the manifest (e.g. the preset and its schedule).
        train_kwargs: passed to ``train`` when ``workers`` is 1 (``on_epoch``, ``on_batch``, ``stop``).
    Returns:
        The manifest: ``{"format_version", "dataset", "n_eval", "built_seconds", "about", "training", "models",
        "replicas"}``; None with ``train_only``.
    """
    out, emit, started = Path(out), on_event or (lambda event, details: None), time.perf_counter()
    replicas = dict(replicas or {})
    datasets = {config.dataset for config in [*configs.values(), *replicas.values()]}
    if len(datasets) != 1:
        raise ValueError(f"a zoo holds one dataset, got {sorted(datasets)}")
    curves = tuple(name for name in (f"{REFERENCE}-seed1", f"grad_y_{AUTHORS_LAM:g}-seed1") if REFERENCE in configs)
    jobs = zoo_jobs.plan(configs, replicas, out, reference=REFERENCE, focus=f"grad_y_{AUTHORS_LAM:g}", curves=curves)
    trained = zoo_jobs.run_jobs(jobs, workers=workers, on_event=emit, **train_kwargs)
    training = {"wall_seconds": round(time.perf_counter() - started, 1), "workers": workers,
                "trained_on": sorted({t["trained_on"] for t in trained})}
    if train_only:
        write_json(training | {"jobs": trained}, out / "training.json")
        return None
    x, y = load_dataset(datasets.pop(), "test").tensors
    reference = checkpoints.load(jobs[0].path).build() if jobs and jobs[0].name == REFERENCE else None
    by_name = {job.name: job for job in jobs}
    listed = sorted(configs, key=lambda name: name != REFERENCE) + list(replicas)  # the configs' own order
    entries = {name: _entry(by_name[name], x[:n_eval], y[:n_eval], None if name == REFERENCE else reference, out,
                            emit) for name in listed}
    manifest = {"format_version": 1, "dataset": jobs[0].config.dataset if jobs else "", "n_eval": n_eval,
                "built_seconds": round(time.perf_counter() - started, 1), "about": about or {},
                "training": _read_training(out) or training,
                "models": [entries[name] for name in listed if name in configs],
                "replicas": [entries[name] for name in replicas]}
    write_manifest(manifest, out)
    return manifest


def _entry(job: zoo_jobs.Job, x: torch.Tensor, y: torch.Tensor, reference: nn.Module | None, out: Path,
           emit: OnEvent) -> dict:
    """The manifest entry of a trained job: its card is computed here from the stored weights."""
    ckpt = checkpoints.load(job.path)
    if not ckpt.complete:
        raise RuntimeError(f"training of {job.name!r} was stopped; the zoo is incomplete")
    card = model_card(ckpt.build(), x, y, reference=reference) | {"recipe": ckpt.config.recipe}
    emit("card", {"name": job.name, "card": card})
    entry = {"name": job.name, "id": ckpt.id, "file": job.path.relative_to(out).as_posix(),
             "config": ckpt.config.to_dict(), "test_accuracy": ckpt.metrics["test_accuracy"],
             "train_seconds": round(ckpt.train_seconds, 1), "trained_on": ckpt.trained_on,
             "code_version": ckpt.code_version, "card": card}
    curve = zoo_jobs.curve_path(job)
    if curve.is_file():
        entry["curve"] = json.loads(curve.read_text())
    return entry


def _read_training(out: Path) -> dict | None:
    """What a ``train_only`` run recorded in ``out/training.json`` (e.g. on another machine), if anything."""
    path = out / "training.json"
    if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def write_manifest(manifest: dict, out: str | Path) -> Path:
    """Write ``out/manifest.json`` through a temporary file and a rename."""
    return write_json(manifest, Path(out) / MANIFEST)


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
