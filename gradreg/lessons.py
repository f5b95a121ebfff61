"""Data for the dashboard's three lessons: a transfer-matrix cell and the examples it counts, the gradient-masking
lesson (table, verdicts and the facts of its narrative) and the paper's iterated-TGSM morph grids read by a judge.

Pure functions on models and tensors that return numpy arrays and plain dicts. Ross & Doshi-Velez 2018
(arXiv 1711.09404) §§5–7 as restated in PAPER.md; masking checks after Athalye et al. 2018 (arXiv 1802.00420).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from gradreg.attacks import attack, check_inputs, get_attack
from gradreg.evaluate import CHUNK, chunk_seed, chunk_targets, chunks, device_of, predict, judge_target_rate
from gradreg.experiments import class_examples, grid_records, iterated_grid
from gradreg.reproduce import COMPARED, EXTRAS, assign_roles
from gradreg.transfer import transfer_matrix

TRANSFER_METHODS = ("fgsm", "tgsm", "pgd")
PAPER_ROLES = COMPARED  # the paper's five models (PAPER.md §6)
MASKING_ROLES = ("distill", "fgsm_at", "grad_y", "pgd_at")  # the masked pair, then the two honest defences
ATTACK_COLUMNS = ("fgsm", "pgd", "square", "transfer")

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


def zoo_roles(manifest: Mapping | None) -> dict[str, str]:
    """Checkpoint id → the paper role it plays (``reproduce.assign_roles``: plain, distill, …, pgd_at); the judge
    is not a role here. Empty without a manifest."""
    if not manifest:
        return {}
    ids = {m["name"]: m["id"] for m in manifest["models"]}
    return {ids[name]: role for role, name in assign_roles(manifest).items() if role in COMPARED + EXTRAS}


def role_ids(manifest: Mapping | None, wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """(ids of the ``wanted`` roles the zoo has, in that order; the roles it lacks)."""
    by_role = {role: cid for cid, role in zoo_roles(manifest).items()}
    return [by_role[r] for r in wanted if r in by_role], [r for r in wanted if r not in by_role]


def judge_id(manifest: Mapping | None) -> str | None:
    """The zoo's default judge (``reproduce.JUDGES``: the first of grad_fd, pgd_at, both it has), or None."""
    if not manifest:
        return None
    name = assign_roles(manifest).get("judge")
    return next((m["id"] for m in manifest["models"] if m["name"] == name), None)


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
    for i, (start, xb, yb) in enumerate(chunks(x, y, device_of(source), batch_size=CHUNK)):
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
    check_inputs(x, y)
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


def lesson_row(name: str, checks: Sequence[Mapping], eps: float) -> dict:
    """One model's row of the masking lesson from its ``masking.masking_checks`` records at ``eps``.

    Returns:
        ``{"model", "fgsm", "pgd", "square", "transfer" (None when skipped), "zero_gradient_fraction",
        "verdicts": {check: verdict}}``, accuracies in [0, 1].
    """
    by_check = {c["check"]: c for c in checks}
    missing = {"iterative_vs_single_step", "gradient_free_vs_gradient", "white_box_vs_transfer",
               "zero_gradients"} - set(by_check)
    if missing:
        raise ValueError(f"masking checks lack {sorted(missing)}; pass masking_checks(...) records")
    iterative = by_check["iterative_vs_single_step"]["numbers"]
    if eps not in iterative:
        raise ValueError(f"no masking numbers at ε = {eps}; available: {sorted(iterative)}")
    transfer = by_check["white_box_vs_transfer"]["numbers"].get(eps, {})
    return {"model": name, "fgsm": iterative[eps]["fgsm"], "pgd": iterative[eps]["pgd"],
            "square": by_check["gradient_free_vs_gradient"]["numbers"][eps]["square"],
            "transfer": transfer.get("transfer_fgsm"),
            "zero_gradient_fraction": by_check["zero_gradients"]["numbers"]["zero_example_fraction"],
            "verdicts": {c["check"]: c["verdict"] for c in checks if c["verdict"] != "info"}}


def verdict_records(checks_by_model: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """``[{"model", "check", "verdict", "detail"}]`` for every non-statistics check of every model."""
    return [{"model": name, "check": c["check"], "verdict": c["verdict"], "detail": c["detail"]}
            for name, checks in checks_by_model.items() for c in checks if c["verdict"] != "info"]


def _worst(row: Mapping) -> tuple[str, float]:
    """The strongest attack on a row: (column, accuracy)."""
    column = min((c for c in ATTACK_COLUMNS if row.get(c) is not None), key=lambda c: row[c])
    return column, row[column]


def _distill_sentence(row: Mapping, best: bool, labels: Mapping[str, str]) -> str:
    attack, value = _worst(row)
    flagged = [c for c, v in row["verdicts"].items() if v == "fail"]
    others = f"PGD {row['pgd']:.0%}, Square {row['square']:.0%}" + (
        f", FGSM from plain {row['transfer']:.0%}" if row["transfer"] is not None else "")
    text = f"Distillation keeps {row['fgsm']:.0%} under FGSM" + (", the best score here," if best else "")
    if attack == "fgsm":
        text += f" and FGSM is also its strongest attack here ({others}): no sign of masking at this ε."
    else:
        text += f" but {labels.get(attack, attack)} leaves {value:.0%} ({others})."
    zero = row["zero_gradient_fraction"]
    if zero > 0:
        text += (f" {zero:.0%} of its test images have an exactly-zero input gradient: sign(0) = 0, so FGSM does "
                 "not move them (gradient underflow), while attacks that do not rely on its own gradient get through.")
    else:
        text += " None of its test images has an exactly-zero input gradient."
    return text + (f" Failed masking checks: {', '.join(flagged)}." if flagged else " No masking check fails.")


def _defence_sentence(row: Mapping, labels: Mapping[str, str], gap: float = 0.2) -> str:
    attack, value = _worst(row)
    text = (f"**{row['model']}**: FGSM {row['fgsm']:.0%}, PGD {row['pgd']:.0%}, Square {row['square']:.0%}; "
            f"its strongest attack is {labels.get(attack, attack)} ({value:.0%}).")
    if row["pgd"] < row["fgsm"] - gap:
        text += (f" PGD is {(row['fgsm'] - row['pgd']) * 100:.0f} points below FGSM: single-step robustness "
                 "overstates this model's.")
    if row["transfer"] is not None:
        fair = row["fgsm"] <= row["transfer"]
        text += (f" White-box FGSM {'≤' if fair else '>'} FGSM transferred from plain ({row['transfer']:.0%}): "
                 + ("its own gradient is the better guide, as it should be." if fair else
                    "another model's gradient attacks it better than its own, the masking signature."))
    return text


def masking_story(rows: Sequence[Mapping], *, eps: float, roles: Mapping[str, str],
                  labels: Mapping[str, str]) -> list[str]:
    """The lesson's narrative as Markdown sentences, every number read from ``rows`` (``lesson_row`` records).

    Args:
        roles: row "model" → paper role (distill, fgsm_at, grad_y, pgd_at); labels: attack column → label.
    """
    if not rows:
        return []
    by_role = {roles.get(r["model"]): r for r in rows}
    best = max(rows, key=lambda r: r["fgsm"])
    story = [f"At ε = {eps:g}, white-box FGSM is resisted best by **{best['model']}** ({best['fgsm']:.0%})."]
    if "distill" in by_role:
        story.append(_distill_sentence(by_role["distill"], by_role["distill"] is best, labels))
    for role in ("fgsm_at", "grad_y", "pgd_at"):
        row = by_role.get(role)
        if row is None:
            continue
        story.append(_defence_sentence(row, labels))
    return story


def morph_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 10, eps: float = 0.1,
               judge: nn.Module | None = None) -> dict:
    """The paper's iterated-TGSM grid (PAPER.md §4, §7): the first image of each class pushed toward every class.

    Args:
        x, y: test images ``(N, C, H, W)`` and labels holding every class 0 … K−1; steps, eps: TGSM steps of ε.
    Returns:
        ``{"grid": (K, K, C, H, W) numpy (row = original class, column = target), "classes", "model_pred",
        "judge_pred" ((K, K) lists; judge_pred None without a judge), "model_target_rate",
        "judge_target_rate" (off-diagonal cells, ``experiments.grid_records``)}``.
    """
    check_inputs(x, y)
    k = int(y.max()) + 1
    if set(y.tolist()) != set(range(k)):
        absent = sorted(set(range(k)) - set(y.tolist()))
        raise ValueError(f"the images must hold every class 0 … {k - 1}; missing {absent}")
    xc, yc = class_examples(x, y, k)
    grid = iterated_grid(model, xc, yc, steps=steps, eps=eps)  # (K, K, C, H, W)
    cells = grid.flatten(0, 1)
    record = grid_records({"model": grid}, {"model": model}, judge)[0]
    return {"grid": grid.numpy(), "classes": yc.tolist(), "model_pred": predict(model, cells).view(k, k).tolist(),
            "judge_pred": None if judge is None else predict(judge, cells).view(k, k).tolist(),
            "model_target_rate": record["model_target_rate"], "judge_target_rate": record.get("judge_target_rate")}


def judge_rates(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 10,
                eps: float = 0.1, seed: int | None = 0) -> dict:
    """``evaluate.judge_target_rate`` of iterated TGSM toward (y + 1) mod K on ``x`` (PAPER.md §7's stand-in for
    the human study): ``{"model_target_rate", "judge_target_rate", "judge_true_rate", "n", ...}``."""
    return judge_target_rate(model, judge, x, y, method="iterated_tgsm", eps=eps, steps=steps, seed=seed)


def morph_row(name: str, grid: Mapping, rates: Mapping | None) -> dict:
    """One table row: the grid's target rates (crafting model, judge) and ``judge_rates`` over many images."""
    rates = rates or {}
    return {"model": name, "grid: model says target": grid["model_target_rate"],
            "grid: judge says target": grid["judge_target_rate"],
            "images: model says target": rates.get("model_target_rate"),
            "images: judge says target": rates.get("judge_target_rate"),
            "images: judge says original": rates.get("judge_true_rate"), "images": rates.get("n")}
