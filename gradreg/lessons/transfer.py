"""The transfer lesson: the transfer matrix at one ε, the examples one cell counts, and the authors' numbers beside
ours where a cell matches theirs.

Pure functions on models and tensors that return numpy arrays and plain dicts. Ross & Doshi-Velez 2018
(arXiv 1711.09404) §§5–6 as restated in PAPER.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from gradreg.attacks import attack, get_attack
from gradreg.core.modules import model_device
from gradreg.core.validation import check_labelled
from gradreg.evaluation.accuracy import CHUNK, chunk_seed, chunk_targets, chunks, predict
from gradreg.evaluation.transfer import transfer_matrix
from gradreg.paper.reproduce import COMPARED

TRANSFER_METHODS = ("fgsm", "tgsm", "pgd")
PAPER_ROLES = COMPARED  # the paper's five models (PAPER.md §6)

# The authors' MNIST accuracies from PAPER.md §6 (full MNIST, 70 epochs, first 256 test images), FGSM only, as
# (source role, evaluated role, ε) → accuracy. Row "FGSM crafted on Normal" gives the plain-source cells; the
# white-box FGSM table gives the diagonal (plain → plain from the transfer table, which has one more digit).
PAPER_MNIST_FGSM_ACCURACY: dict[tuple[str, str, float], float] = {
    **{("plain", "plain", e): a for e, a in zip((0.1, 0.2, 0.3, 0.4, 0.5), (0.727, 0.277, 0.113, 0.070, 0.043))},
    **{("plain", "distill", e): a for e, a in zip((0.1, 0.2, 0.3, 0.4, 0.5), (0.945, 0.578, 0.211, 0.074, 0.062))},
    **{("plain", "fgsm_at", e): a for e, a in zip((0.1, 0.2, 0.3, 0.4, 0.5), (0.984, 0.973, 0.855, 0.457, 0.176))},
    **{("plain", "grad_uniform", e): a
       for e, a in zip((0.1, 0.2, 0.3, 0.4, 0.5), (0.980, 0.926, 0.742, 0.488, 0.305))},
    **{("plain", "grad_y", e): a for e, a in zip((0.1, 0.2, 0.3, 0.4, 0.5), (0.984, 0.922, 0.797, 0.621, 0.395))},
    **{(r, r, e): a for r, values in (("distill", (0.99, 0.99, 0.99)), ("fgsm_at", (1.00, 0.99, 0.96)),
                                      ("grad_uniform", (0.95, 0.55, 0.11)), ("grad_y", (0.92, 0.65, 0.28)))
       for e, a in zip((0.1, 0.2, 0.3), values)},
}


def paper_accuracy(source_role: str | None, model_role: str | None, *, method: str, eps: float,
                   dataset: str) -> float | None:
    """The authors' number for this cell (``PAPER_MNIST_FGSM_ACCURACY``), or None where the paper has none."""
    if dataset != "mnist" or method != "fgsm":
        return None
    return PAPER_MNIST_FGSM_ACCURACY.get((source_role, model_role, round(float(eps), 4)))


def _check_method(method: str) -> None:
    if method not in TRANSFER_METHODS:
        raise ValueError(f"unknown transfer attack {method!r}; valid: {', '.join(TRANSFER_METHODS)}")


def transfer_cells(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, method: str, eps: float,
                   seed: int | None = 0, **params) -> list[dict]:
    """The transfer matrix at one ε: ``[{"source", "model", "accuracy", "white_box", "n", ...}]`` (accuracy in
    [0, 1]), one record per (source, evaluated model). method: one of ``TRANSFER_METHODS``."""
    _check_method(method)
    return transfer_matrix(models, x, y, method=method, epsilons=[eps], seed=seed, **params)


def _crafted(source: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str, eps: float, seed: int | None,
             params: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(x_adv, y, target) per chunk, crafted exactly as ``transfer_matrix`` does (same chunks, targets, seeds)."""
    spec = get_attack(method)
    for i, (start, xb, yb) in enumerate(chunks(x, y, model_device(source), batch_size=CHUNK)):
        tb = chunk_targets(source, spec, xb, yb, None, start, chunk_seed(seed, i))
        x_adv = attack(source, xb, yb, method, eps=eps, target=tb, seed=chunk_seed(seed, i), **params)
        yield x_adv.cpu(), yb.cpu(), tb


def cell_examples(source: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str,
                  eps: float, limit: int = 8, seed: int | None = 0, **params) -> dict:
    """The examples one transfer cell counts: ``source`` crafts, ``model`` is scored.

    Examples are ordered: those that fool ``model`` first, then those where ``model`` and ``source`` disagree on
    the crafted image, then the rest; the first ``limit`` come back.
    Returns:
        ``{"index", "label", "source_pred", "model_pred", "target" (or None), "kind"}`` lists, ``"x"``, ``"x_adv"``
        ``(M, C, H, W)`` numpy in [0, 1], and counts ``"n", "n_fooled", "n_disagree", "accuracy"`` over all of x.
    """
    _check_method(method)
    check_labelled(source, x, y)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    parts = list(_crafted(source, x, y, method=method, eps=eps, seed=seed, params=params))
    x_adv, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    targets = torch.cat([p[2].cpu() for p in parts]) if parts[0][2] is not None else None
    source_pred, model_pred = predict(source, x_adv), predict(model, x_adv)
    fooled, disagree = model_pred != labels, model_pred != source_pred
    rank = torch.where(fooled, 0, torch.where(disagree, 1, 2))
    order = sorted(range(len(x)), key=lambda i: (int(rank[i]), i))[:limit]
    kinds = ("fools the evaluated model", "the two models disagree", "both agree, evaluated model right")
    pick = torch.tensor(order, dtype=torch.long)
    return {"index": order, "label": labels[pick].tolist(), "source_pred": source_pred[pick].tolist(),
            "model_pred": model_pred[pick].tolist(), "target": None if targets is None else targets[pick].tolist(),
            "kind": [kinds[int(rank[i])] for i in order], "x": x[pick].cpu().numpy(), "x_adv": x_adv[pick].numpy(),
            "n": len(x), "n_fooled": int(fooled.sum()), "n_disagree": int(disagree.sum()),
            "accuracy": 1 - int(fooled.sum()) / len(x)}
