"""Evaluation: accuracy, robust accuracy over ε, minimal ε, JSMA and judge statistics (functions return data).

Protocol of Ross & Doshi-Velez 2018 (arXiv 1711.09404) as restated in PAPER.md §5; transfer matrices live in
``gradreg.evaluation.transfer`` and gradient-masking checks in ``gradreg.evaluation.masking``. Attacks run in chunks of ``CHUNK`` images
on the model's device; results come back on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, Iterator

import torch
from torch import nn

from gradreg.attacks import AttackSpec, Target, attack, check_eps, check_inputs, get_attack, resolve_target
from gradreg.attacks.descent import generator_for, loss_gradient
from gradreg.core.modules import eval_mode
from gradreg.core.validation import check_count, check_fit

EVAL_BATCH = 1000
CHUNK = 256  # images per attack batch
OnProgress = Callable[[int, int], None]  # (chunks done, chunks in all)


def _check_pair(x: torch.Tensor, y: torch.Tensor, model: nn.Module | None = None) -> None:
    if model is not None:
        check_fit(model, x, y)  # shapes, dtype, labels in [0, K)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be images (N, C, H, W), got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must be labels (N,) with N = {len(x)}, got shape {tuple(y.shape)}")


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits ``(N, K)`` in eval mode, batched; the model's mode is restored afterwards."""
    device = device_of(model)
    with eval_mode(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> float:
    """Fraction of ``x`` (``(N, C, H, W)`` in [0, 1]) classified as ``y`` (``(N,)``), in [0, 1]."""
    _check_pair(x, y, model)
    check_count("batch_size", batch_size)
    if len(x) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return int((predict_logits(model, x, batch_size=batch_size).argmax(1) == y.cpu()).sum()) / len(y)  # exact ratio


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Per-example ‖∇ₓ CE(y, f(x))‖₂ ``(N,)`` in eval mode (PAPER.md §5 diagnostics)."""
    _check_pair(x, y, model)
    check_count("batch_size", batch_size)
    device = device_of(model)
    with eval_mode(model):
        norms = [loss_gradient(model, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
                 .flatten(1).norm(dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(norms)


def check_epsilons(epsilons: Iterable[float]) -> list[float]:
    """The ε grid as a non-empty list of finite numbers >= 0; ``ValueError`` otherwise."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Iterable):
        raise ValueError(f"epsilons must be a sequence of numbers, got {epsilons!r}")
    values = list(epsilons)
    if not values:
        raise ValueError("epsilons must not be empty")
    for eps in values:
        check_eps(eps)
    return [float(eps) for eps in values]


def chunks(x: torch.Tensor, y: torch.Tensor, device: torch.device, *,
           batch_size: int = CHUNK) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(start, x chunk, y chunk) on ``device``."""
    for start in range(0, len(x), batch_size):
        yield start, x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)


def chunk_targets(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, target: Target | None,
                  start: int, seed: int | None) -> torch.Tensor | None:
    """Target classes of one chunk for a targeted attack (default ``"next"``), None for an untargeted one."""
    if not spec.targeted:
        if target is not None:
            raise ValueError("an untargeted attack takes no target")
        return None
    if isinstance(target, torch.Tensor):
        target = target[start : start + len(x)].to(y.device)
    return resolve_target(model, x, y, "next" if target is None else target, generator=generator_for(seed))


def chunk_seed(seed: int | None, index: int) -> int | None:
    """Each chunk gets its own seed, so results do not depend on how many chunks ran before."""
    return None if seed is None else seed + index


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``(N,)`` on ``x``'s device, eval mode."""
    with eval_mode(model):
        return model(x.to(device_of(model))).argmax(1).to(x.device)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str,
                    epsilons: Iterable[float], target: Target | None = None, seed: int | None = 0,
                    batch_size: int = CHUNK, on_progress: OnProgress | None = None, **params) -> list[dict]:
    """White-box accuracy under ``method`` at each ε (one tidy record per ε).

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; method: a key of ``ATTACKS``.
        epsilons: radii in pixel units; target: for targeted attacks (default ``"next"``); seed: base seed.
        params: the attack's knobs (e.g. ``steps=40``).
    Returns:
        ``[{"method", "eps", "accuracy", "n"}]`` with accuracy in [0, 1], plus ``"target_rate"`` (fraction
        classified as the target) for targeted attacks.
    """
    spec, eps_list = get_attack(method), check_epsilons(epsilons)
    check_inputs(x, y)
    check_fit(model, x, y)
    check_count("batch_size", batch_size)
    device, n_chunks = device_of(model), -(-len(x) // batch_size)
    records = []
    for j, eps in enumerate(eps_list):
        correct = hits = 0
        for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
            tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
            pred = predict(model, attack(model, xb, yb, method, eps=eps, target=tb, seed=chunk_seed(seed, i),
                                         **params))
            correct += int((pred == yb).sum())
            hits += int((pred == tb).sum()) if tb is not None else 0
            if on_progress is not None:
                on_progress(j * n_chunks + i + 1, len(eps_list) * n_chunks)
        record = {"method": method, "eps": eps, "accuracy": correct / len(x), "n": len(x)}
        records.append(record | ({"target_rate": hits / len(x)} if spec.targeted else {}))
    return records


def _succeeds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str, eps: torch.Tensor,
              target: torch.Tensor | None, seed: int | None, **params) -> torch.Tensor:
    """Per example: misclassified (untargeted) or classified as the target (targeted) after the attack."""
    pred = predict(model, attack(model, x, y, method, eps=eps, target=target, seed=seed, **params))
    return pred == target if target is not None else pred != y


def minimal_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "fgsm", high: float = 1.0,
                iters: int = 10, target: Target | None = None, seed: int | None = 0, batch_size: int = CHUNK,
                **params) -> torch.Tensor:
    """Per-example smallest ε at which ``method`` succeeds, by bisection on [0, ``high``] (resolution high/2^iters).

    Success means misclassified (untargeted) or classified as the target (targeted). Bisection assumes success
    is monotone in ε, exact for FGSM on a linear model and approximate for deep nets.

    Returns:
        ``(N,)`` on the CPU: 0 where the clean image already succeeds, ``inf`` where ε = ``high`` does not.
    """
    spec = get_attack(method)
    check_inputs(x, y)
    check_eps(high)
    device, out = device_of(model), []
    for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
        tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
        run = dict(params, method=method, target=tb, seed=chunk_seed(seed, i))
        lo, hi = torch.zeros(len(xb), device=device), torch.full((len(xb),), float(high), device=device)
        at_zero, at_high = _succeeds(model, xb, yb, eps=lo, **run), _succeeds(model, xb, yb, eps=hi, **run)
        for _ in range(iters):
            mid = (lo + hi) / 2
            ok = _succeeds(model, xb, yb, eps=mid, **run)
            lo, hi = torch.where(ok, lo, mid), torch.where(ok, mid, hi)
        hi = torch.where(at_high, hi, torch.full_like(hi, float("inf")))
        out.append(torch.where(at_zero, torch.zeros_like(hi), hi).cpu())
    return torch.cat(out)


def jsma_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 1.0, gamma: float = 0.25,
               target: Target = "next", seed: int | None = 0, batch_size: int = CHUNK) -> dict:
    """JSMA's success rate and distortion, Papernot et al.'s (arXiv 1511.07528) two metrics.

    Returns:
        ``{"success_rate", "mean_l0", "mean_l0_fraction", "n"}``: success = classified as the target; L0 =
        input features changed, averaged over the successful examples (NaN if none), and as a fraction of D.
    """
    spec = get_attack("jsma")
    check_inputs(x, y)
    device, successes, l0 = device_of(model), 0, []
    for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
        tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
        x_adv = attack(model, xb, yb, "jsma", eps=eps, target=tb, gamma=gamma)
        ok = predict(model, x_adv) == tb
        successes += int(ok.sum())
        l0.append((x_adv != xb).flatten(1).sum(1)[ok].double().cpu())
    changed = torch.cat(l0)
    mean_l0 = changed.mean().item() if len(changed) else float("nan")
    return {"success_rate": successes / len(x), "mean_l0": mean_l0, "mean_l0_fraction": mean_l0 / x[0].numel(),
            "n": len(x)}


def judge_target_rate(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                      method: str = "iterated_tgsm", eps: float = 0.1, target: Target = "next",
                      seed: int | None = 0, batch_size: int = CHUNK, **params) -> dict:
    """Craft targeted examples on ``model`` and ask an independent ``judge`` model what they show: the
    measurable stand-in for the paper's human study (PAPER.md §7).

    Returns:
        ``{"method", "eps", "model_target_rate", "judge_target_rate", "judge_true_rate", "n"}``, rates in [0, 1].
    """
    spec = get_attack(method)
    if not spec.targeted:
        raise ValueError(f"{method} is untargeted; the judge needs a targeted attack")
    check_inputs(x, y)
    device, counts = device_of(model), [0, 0, 0]
    for i, (start, xb, yb) in enumerate(chunks(x, y, device, batch_size=batch_size)):
        tb = chunk_targets(model, spec, xb, yb, target, start, chunk_seed(seed, i))
        x_adv = attack(model, xb, yb, method, eps=eps, target=tb, **params)
        judged = predict(judge, x_adv)
        hits = (predict(model, x_adv) == tb, judged == tb, judged == yb)
        counts = [c + int(h.sum()) for c, h in zip(counts, hits)]
    rates = [c / len(x) for c in counts]
    return {"method": method, "eps": eps, "model_target_rate": rates[0], "judge_target_rate": rates[1],
            "judge_true_rate": rates[2], "n": len(x)}
