"""Evaluation: accuracy, robust accuracy over ε, JSMA and judge statistics (functions return data).

Protocol of Ross & Doshi-Velez 2018 (arXiv 1711.09404) as restated in PAPER.md §5; transfer matrices live in
``gradreg.evaluation.transfer`` and gradient-masking checks in ``gradreg.evaluation.masking``. Attacks run in chunks
of ``CHUNK`` images on the model's device; results come back on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, Iterator

import torch
from torch import nn

from gradreg.attacks import (AttackSpec, AttackTarget, attack, check_epsilons, get_attack, loss_gradient, sized,
                             target_classes)
from gradreg.attacks.descent import generator_for
from gradreg.core.modules import eval_mode, model_device
from gradreg.core.validation import check_count, check_labelled

EVAL_BATCH = 1000
CHUNK = 256  # images per attack batch
OnProgress = Callable[[int, int], None]  # (chunks done, chunks in all)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits ``(N, K)`` in eval mode, batched; the model's mode is restored afterwards."""
    device = model_device(model)
    with eval_mode(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> float:
    """Fraction of ``x`` (``(N, C, H, W)`` in [0, 1]) classified as ``y`` (``(N,)``), in [0, 1]."""
    check_labelled(model, x, y)
    check_count("batch_size", batch_size)
    if len(x) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return int((predict_logits(model, x, batch_size=batch_size).argmax(1) == y.cpu()).sum()) / len(y)  # exact ratio


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Per-example ‖∇ₓ CE(y, f(x))‖₂ ``(N,)`` in eval mode (PAPER.md §5 diagnostics)."""
    check_labelled(model, x, y)
    check_count("batch_size", batch_size)
    device = model_device(model)
    with eval_mode(model):
        norms = [loss_gradient(model, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
                 .flatten(1).norm(dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(norms)


def chunks(x: torch.Tensor, y: torch.Tensor, device: torch.device, *,
           batch_size: int = CHUNK) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(start, x chunk, y chunk) on ``device``."""
    for start in range(0, len(x), batch_size):
        yield start, x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)


def chunk_targets(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, target: AttackTarget | None,
                  start: int, seed: int | None) -> torch.Tensor | None:
    """Target classes of one chunk for a targeted attack (default ``"next"``), None for an untargeted one."""
    if not spec.targeted:
        if target is not None:
            raise ValueError("an untargeted attack takes no target")
        return None
    if isinstance(target, torch.Tensor):
        target = target[start : start + len(x)].to(y.device)
    return target_classes(model, x, y, "next" if target is None else target, generator=generator_for(seed))


def chunk_seed(seed: int | None, index: int) -> int | None:
    """Each chunk gets its own seed, so results do not depend on how many chunks ran before."""
    return None if seed is None else seed + index


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``(N,)`` on ``x``'s device, eval mode."""
    with eval_mode(model):
        return model(x.to(model_device(model))).argmax(1).to(x.device)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str,
                    epsilons: Iterable[float], target: AttackTarget | None = None, seed: int | None = 0,
                    batch_size: int = CHUNK, on_progress: OnProgress | None = None, **params) -> list[dict]:
    """White-box accuracy under ``method`` at each ε (one tidy record per ε).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; method: a key of ``ATTACKS``.
        epsilons: the attack's size at each point (``ATTACKS[method].size``): radii in pixel units, or iterated
            TGSM's per-step sizes, or JSMA's θ; target: for targeted attacks (default ``"next"``); seed: base seed.
        params: the attack's other knobs (e.g. ``steps=40``).
    Returns:
        ``[{"method", "eps", "accuracy", "n"}]`` (``eps``: the size swept) with accuracy in [0, 1], plus
        ``"target_rate"`` (fraction classified as the target) for targeted attacks.
    """
    spec, eps_list = get_attack(method), check_epsilons(epsilons)
    check_labelled(model, x, y)
    check_count("batch_size", batch_size)
    device, n_chunks = model_device(model), -(-len(x) // batch_size)
    records = []
    for j, eps in enumerate(eps_list):
        correct = hits = 0
        for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
            tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
            pred = predict(model, attack(model, xb, yb, method, **sized(method, eps), target=tb,
                                         seed=chunk_seed(seed, i), **params))
            correct += int((pred == yb).sum())
            hits += int((pred == tb).sum()) if tb is not None else 0
            if on_progress is not None:
                on_progress(j * n_chunks + i + 1, len(eps_list) * n_chunks)
        record = {"method": method, "eps": eps, "accuracy": correct / len(x), "n": len(x)}
        records.append(record | ({"target_rate": hits / len(x)} if spec.targeted else {}))
    return records


def jsma_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, theta: float = 1.0, gamma: float = 0.25,
               target: AttackTarget = "next", seed: int | None = 0, batch_size: int = CHUNK) -> dict:
    """JSMA's success rate and distortion, Papernot et al.'s (arXiv 1511.07528) two metrics.

    Returns:
        ``{"success_rate", "mean_l0", "mean_l0_fraction", "n"}``: success = classified as the target; L0 =
        input features changed, averaged over the successful examples (NaN if none), and as a fraction of D.
    """
    spec = get_attack("jsma")
    check_labelled(model, x, y)
    device, successes, l0 = model_device(model), 0, []
    for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
        tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
        x_adv = attack(model, xb, yb, "jsma", theta=theta, target=tb, gamma=gamma)
        ok = predict(model, x_adv) == tb
        successes += int(ok.sum())
        l0.append((x_adv != xb).flatten(1).sum(1)[ok].double().cpu())
    changed = torch.cat(l0)
    mean_l0 = changed.mean().item() if len(changed) else float("nan")
    return {"success_rate": successes / len(x), "mean_l0": mean_l0, "mean_l0_fraction": mean_l0 / x[0].numel(),
            "n": len(x)}


def judge_target_rate(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                      method: str = "iterated_tgsm", target: AttackTarget = "next", seed: int | None = 0,
                      batch_size: int = CHUNK, **params) -> dict:
    """Craft targeted examples on ``model`` and ask an independent ``judge`` model what they show: the
    measurable stand-in for the paper's human study (PAPER.md §7).

    Args:
        params: the attack's knobs, its size among them (iterated TGSM: ``step_size``, default 0.1, and ``steps``;
            TGSM: ``eps``).
    Returns:
        ``{"method", <size knob>, "model_target_rate", "judge_target_rate", "judge_true_rate", "n"}``, rates in
        [0, 1] (the size knob with its value, e.g. ``"step_size": 0.1``).
    """
    spec = get_attack(method)
    if not spec.targeted:
        raise ValueError(f"{method} is untargeted; the judge needs a targeted attack")
    check_labelled(model, x, y)
    device, counts = model_device(model), [0, 0, 0]
    for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
        tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
        x_adv = attack(model, xb, yb, method, target=tb, **params)
        judged = predict(judge, x_adv)
        hits = (predict(model, x_adv) == tb, judged == tb, judged == yb)
        counts = [c + int(h.sum()) for c, h in zip(counts, hits)]
    rates = [c / len(x) for c in counts]
    size = params.get(spec.size, spec.params.get(spec.size))
    return {"method": method, spec.size: size, "model_target_rate": rates[0], "judge_target_rate": rates[1],
            "judge_true_rate": rates[2], "n": len(x)}
