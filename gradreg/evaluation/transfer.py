"""Transfer matrices: examples crafted on each source model, every model scored on them (PAPER.md §5).

Ross & Doshi-Velez 2018 (arXiv 1711.09404) compute each source's FGSM/TGSM direction once and score every model
at every ε; the diagonal is the white-box attack, the rest black-box transfer (Papernot et al. 2016,
arXiv 1605.07277).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from gradreg.attacks import AttackTarget, attack, check_epsilons, get_attack, single_step_sweep, sized
from gradreg.core.modules import model_device
from gradreg.core.validation import check_count, check_labelled
from gradreg.evaluation.accuracy import CHUNK, OnProgress, chunk_seed, chunk_targets, chunks, predict


def _source_examples(source: nn.Module, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, *, method: str,
                     eps_list: list[float], seed: int | None, params: dict) -> Iterable[torch.Tensor]:
    """The source's adversarial examples at each ε: for a single-step attack its direction is computed once."""
    if get_attack(method).single_step:
        return single_step_sweep(source, x, y, epsilons=eps_list, target=t)
    return (attack(source, x, y, method, **sized(method, eps), target=t, seed=seed, **params) for eps in eps_list)


def transfer_matrix(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, method: str,
                    epsilons: Iterable[float], target: AttackTarget | None = None, seed: int | None = 0,
                    batch_size: int = CHUNK, on_progress: OnProgress | None = None, **params) -> list[dict]:
    """Score every model on every source's adversarial examples at every ε (diagonal = white-box).

    Args:
        models: name → model; each is both a source and a scored model.
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; method: a key of ``ATTACKS``.
        epsilons: the attack's size at each point (radii in pixel units; see ``robust_accuracy``); target: for
            targeted attacks, resolved on each source (default "next").
        params: the attack's knobs.
    Returns:
        ``[{"source", "model", "method", "eps", "accuracy", "white_box", "n"}]`` (+ ``"target_rate"`` for
        targeted attacks); the ``white_box`` records equal ``robust_accuracy`` on that model.
    """
    spec, eps_list = get_attack(method), check_epsilons(epsilons)
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of names to models")
    for model in models.values():
        check_labelled(model, x, y)
    check_count("batch_size", batch_size)
    names, n_chunks = list(models), -(-len(x) // batch_size)
    correct = torch.zeros(len(names), len(names), len(eps_list))  # (source, scored model, ε)
    hits = torch.zeros_like(correct)
    for s, source in enumerate(models.values()):
        for i, (start, xb, yb) in enumerate(chunks(x, y, model_device(source), batch_size=batch_size)):
            tb = chunk_targets(source, spec, xb, yb, target, start, chunk_seed(seed, i))
            examples = _source_examples(source, xb, yb, tb, method=method, eps_list=eps_list,
                                        seed=chunk_seed(seed, i), params=params)
            for e, x_adv in enumerate(examples):
                for m, model in enumerate(models.values()):
                    pred = predict(model, x_adv)
                    correct[s, m, e] += float((pred == yb).sum())
                    hits[s, m, e] += float((pred == tb).sum()) if tb is not None else 0.0
            if on_progress is not None:
                on_progress(s * n_chunks + i + 1, len(names) * n_chunks)
    return [{"source": names[s], "model": names[m], "method": method, "eps": eps,
             "accuracy": correct[s, m, e].item() / len(x), "white_box": s == m, "n": len(x)}
            | ({"target_rate": hits[s, m, e].item() / len(x)} if spec.targeted else {})
            for s in range(len(names)) for m in range(len(names)) for e, eps in enumerate(eps_list)]
