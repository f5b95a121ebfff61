"""The zoo as the dashboard's pages see it, as plain data: the catalogue of checkpoint files, each model's card
numbers at an ε, the λ grid and the rows of a λ sweep, and the models a page opens on.

The views follow Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404), PAPER.md §5–7.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Mapping, Sequence

from gradreg.paper.reproduce import COMPARED, EXTRAS, assign_roles
from gradreg.paper.zoo import AUTHORS_LAM, AUTHORS_LAM_UNIFORM, REFERENCE
from gradreg.training import checkpoints

# The authors' MNIST choices (PAPER.md §1), marked on the λ explorer's axis.
AUTHORS_LAMBDAS = {"grad_y": AUTHORS_LAM, "grad_uniform": AUTHORS_LAM_UNIFORM}
REPORTS_DIR = checkpoints.SHIPPED_DIR.parent / "reports"  # the committed reports (REPORT.md and its JSON)
MAX_REPORT_BYTES = 4 * 1024 * 1024
STRONG_KEYS = ("model", "eps", "n", "clean", "fgsm", "pgd", "ensemble")
CARD_KEYS = ("clean", "fgsm", "pgd", "transfer_fgsm", "grad_norm", "max_prob", "other_log_prob")


def catalogue(manifest: Mapping | None, zoo_root: str | Path, user_root: str | Path) -> list[dict]:
    """Every checkpoint file in the zoo and user directories as a plain row, zoo entries carrying their card.

    Returns:
        ``[{"id", "name", "source", "path", "ok", "reason", "complete", "created", "test_accuracy", "card",
        **config}]``: the zoo's models first in manifest order (named as there), then other files of the zoo
        directory, then the user's newest first; unusable files have ``ok=False`` and a reason. A file in both
        directories (one directory given twice) is listed once, as the zoo's.
    """
    entries = {entry["id"]: entry for entry in (manifest or {}).get("models", [])}
    order = {checkpoint_id: i for i, checkpoint_id in enumerate(entries)}  # the zoo's own order: plain, λ grid…
    rows, seen = [], set()
    for source, root in (("zoo", Path(zoo_root)), ("user", Path(user_root))):
        for info in checkpoints.list_checkpoints(root):
            if info.path.resolve() in seen:
                continue
            seen.add(info.path.resolve())
            rows.append(_row(info, source, entries.get(info.id, {}) if info.ok else {}))
    zoo = sorted((r for r in rows if r["source"] == "zoo"), key=lambda r: order.get(r["id"], len(order)))
    return zoo + sorted((r for r in rows if r["source"] == "user"), key=lambda r: r["created"], reverse=True)


def file_rows(paths: list[Path], *, source: str) -> list[dict]:
    """Catalogue rows (as ``catalogue``'s, without a card) for checkpoint files outside the listed directories,
    e.g. a sweep's trials opened on the dashboard."""
    return [_row(info, source, {}) for info in map(checkpoints.inspect, paths)]


def _row(info: checkpoints.CheckpointInfo, source: str, entry: Mapping) -> dict:
    """One catalogue row: the file's facts, its zoo ``entry``'s name and card (if any) and its config's fields."""
    row = {"id": info.id, "name": entry.get("name", ""), "source": source, "path": str(info.path), "ok": info.ok,
           "reason": info.reason, "complete": info.complete, "created": info.created,
           "test_accuracy": info.metrics.get("test_accuracy"), "card": entry.get("card")}
    return row | (info.config.to_dict() if info.config is not None else {})


def card_values(card: Mapping, eps: float) -> dict[str, float | None]:
    """The card's numbers at the curve point nearest ``eps``: clean, fgsm, pgd, transfer_fgsm (accuracies in [0, 1]),
    grad_norm (mean ‖∇ₓ CE‖₂), max_prob and other_log_prob (confidence)."""
    point = min(card["curves"], key=lambda c: abs(c["eps"] - eps))
    return {"eps": point["eps"], "clean": card["clean"], "fgsm": point["fgsm"], "pgd": point["pgd"],
            "transfer_fgsm": point["transfer_fgsm"], "grad_norm": card["grad_norm"], "max_prob": card["max_prob"],
            "other_log_prob": card["other_log_prob"]}


def card_epsilons(manifest: Mapping) -> list[float]:
    """The ε grid of the zoo's cards (L∞, pixel units of [0, 1] images)."""
    cards = [entry["card"] for entry in manifest.get("models", []) if entry.get("card")]
    return sorted({c["eps"] for card in cards for c in card["curves"]})


def lambda_grid(manifest: Mapping) -> dict[str, list[float]]:
    """Regularizer → the sorted λ_eff values the zoo holds for it (models without another defence)."""
    grid: dict[str, set[float]] = {}
    for entry in manifest.get("models", []):
        config = entry["config"]
        if config["regularizer"] != "none" and config["defence"] == "none" and entry.get("card"):
            grid.setdefault(config["regularizer"], set()).add(float(config["lam"]))
    return {name: sorted(values) for name, values in sorted(grid.items())}


def reference_entry(manifest: Mapping) -> dict | None:
    """The plain model the zoo's transfer attacks are crafted on, or None."""
    return next((e for e in manifest.get("models", []) if e["name"] == REFERENCE and e.get("card")), None)


def lambda_rows(manifest: Mapping, regularizer: str, eps: float) -> list[dict]:
    """One record per λ_eff of ``regularizer`` (sorted), each ``{"name", "id", "lam", **card_values}``, and
    ``"spread"`` (``seed_spread``) where the zoo holds other seeds of that entry."""
    rows = [{"name": e["name"], "id": e["id"], "lam": float(e["config"]["lam"]), **card_values(e["card"], eps)}
            for e in manifest.get("models", []) if e.get("card") and e["config"]["regularizer"] == regularizer
            and e["config"]["defence"] == "none"]
    for row in rows:
        if (spread := seed_spread(manifest, row["name"], eps)) is not None:
            row["spread"] = spread
    return sorted(rows, key=lambda r: r["lam"])


def seed_spread(manifest: Mapping, name: str, eps: float) -> dict | None:
    """The standard deviation over seeds of each card value of entry ``name`` (itself and its replicas
    ``<name>-seed<k>``), and ``"seeds"``, their count; None when the zoo has one seed of it."""
    entries = [e for e in [*manifest.get("models", []), *manifest.get("replicas", [])]
               if (e["name"] == name or e["name"].startswith(f"{name}-seed")) and e.get("card")]
    if len(entries) < 2:
        return None
    values = [card_values(e["card"], eps) for e in entries]
    spread: dict = {"seeds": len(entries)}
    for key in ("clean", "fgsm", "pgd", "transfer_fgsm", "grad_norm", "max_prob"):
        xs = [v[key] for v in values if v[key] is not None]
        if len(xs) > 1:
            spread[key] = statistics.stdev(xs)
    return spread


def showcase(manifest: Mapping, *, eps: float = 0.1, tolerance: float = 0.02) -> tuple[dict, dict] | None:
    """(plain entry, the Grad Reg (y) entry with the best white-box FGSM accuracy at ``eps`` among those whose clean
    accuracy is within ``tolerance`` of the plain model's), or None when the zoo lacks either."""
    plain = reference_entry(manifest)
    sweep = lambda_rows(manifest, "grad_y", eps)
    if plain is None or not sweep:
        return None
    good = [r for r in sweep if r["clean"] >= plain["card"]["clean"] - tolerance] or sweep
    best = max(good, key=lambda r: (r["fgsm"], -r["lam"]))
    return plain, next(e for e in manifest["models"] if e["id"] == best["id"])


def lineup(manifest: Mapping, *, count: int = 4) -> list[str]:
    """Ids of up to ``count`` zoo models that contrast well: plain, the showcase Grad Reg (y), the defences."""
    pair = showcase(manifest)
    names = [REFERENCE, pair[1]["name"] if pair else "", "fgsm_at", "pgd_at", "distill", "both", "grad_uniform"]
    by_name = {e["name"]: e["id"] for e in manifest.get("models", [])}
    return [by_name[n] for n in names if n in by_name][:count]




def same_dataset(rows: Sequence[Mapping]) -> str | None:
    """The dataset all ``rows`` were trained on, or None when they differ (or there are none)."""
    names = {row["dataset"] for row in rows}
    return names.pop() if len(names) == 1 else None


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
    """The zoo's default judge (``reproduce.JUDGES``: the first of pgd_at, grad_fd, both it has), or None."""
    if not manifest:
        return None
    name = assign_roles(manifest).get("judge")
    return next((m["id"] for m in manifest["models"] if m["name"] == name), None)


def strong_attack_rows(dataset: str, roles: Sequence[str], *, root: str | Path | None = None) -> list[dict]:
    """The report's strong-attack table (``python -m gradreg robustness``) for the paper roles ``roles``:
    ``[{"model", "eps", "n", "clean", "fgsm", "pgd", "ensemble", "pgd_steps", "restarts", "queries"}]`` (the last
    three: how the run attacked, from its meta) in the table's order; empty when the report has none or its file is
    unreadable."""
    path = Path(root or REPORTS_DIR) / dataset / "robustness.json"
    try:
        if not path.is_file() or path.stat().st_size > MAX_REPORT_BYTES:
            return []
        saved = json.loads(path.read_text())
        meta = saved.get("meta", {})
        how = {"pgd_steps": meta.get("pgd_steps"), "restarts": meta.get("restarts"),
               "queries": meta.get("ensemble", {}).get("queries")}
        return [{k: r[k] for k in STRONG_KEYS} | how for r in saved.get("records", []) if r.get("model") in roles]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return []
