"""A sweep's results: one tidy row per trial (its config, metrics, seconds and where it ran) in ``results.jsonl``,
rewritten atomically as trials finish; read back and summarized as mean ± sd over seeds. No torch, no Ray.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Iterable, Mapping

from gradreg.training.files import write_text

RESULTS = "results.jsonl"
MAX_RESULTS_BYTES = 64 * 1024 * 1024
CONFIG_COLUMNS = ("dataset", "model", "recipe", "activation", "init", "bn_scale", "regularizer", "lam", "defence",
                  "adv_eps", "adv_steps", "temperature", "epochs", "batch_size", "lr", "lr_schedule", "adam_eps",
                  "seed", "n_train")
# Not metrics: identity, config and bookkeeping. Every other number in a row is a metric (accuracies, norms, seconds).
NOT_METRICS = {"trial", "role", "status", "error", "id", "host", "trained_on", "backend", "finished", "trained",
               "stage", "reference", "card_file", "checkpoint", *CONFIG_COLUMNS}
HEADLINE = ("test_accuracy", "clean", "fgsm_0.1", "pgd_0.1", "transfer_fgsm_0.1", "grad_norm", "train_seconds")


class ResultsTable:
    """The rows of one run, by trial name, written to ``folder/results.jsonl`` after every ``add``."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / RESULTS
        self.rows: dict[str, dict] = {}

    def add(self, row: Mapping) -> None:
        self.rows[row["trial"]] = dict(row)
        write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in self.rows.values()), self.path)


def read_results(folder: str | Path) -> list[dict]:
    """The rows of ``folder/results.jsonl``; ``ValueError`` naming the file and line when it is not a results table."""
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise ValueError(f"{path}: no results table here (run `python -m gradreg sweep FILE --storage {folder}`)")
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise ValueError(f"{path}: larger than {MAX_RESULTS_BYTES} bytes")
    rows = []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err})") from None
        if not isinstance(row, dict) or not isinstance(row.get("trial"), str) or row.get("status") not in (
                "done", "failed"):
            raise ValueError(f"{path}, line {number}: not a trial's row (needs 'trial' and 'status' done/failed)")
        rows.append(row)
    return rows


def metric_columns(rows: Iterable[Mapping]) -> list[str]:
    """The numeric columns of ``rows`` that are measurements, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
                seen.setdefault(key)
    return list(seen)


def group_key(row: Mapping) -> tuple:
    """What a row's model is apart from its seed: its role and every config column but ``seed``."""
    return (row.get("role"),) + tuple(row.get(c) for c in CONFIG_COLUMNS if c != "seed")


def summarize(rows: Iterable[Mapping]) -> list[dict]:
    """Mean, sample standard deviation and count over seeds of every metric, per model (finished trials only).

    Returns:
        One dict per group (by dataset, then roles in first-seen order, then λ): the group's config columns (no ``seed``), ``role``, ``seeds`` (the
        seeds seen), ``n``, and for each metric ``m``: ``m`` (mean), ``m_sd`` (0 for one seed) — None where no
        trial of the group has it.
    """
    done = [row for row in rows if row.get("status") == "done"]
    metrics = metric_columns(done)
    groups: dict[tuple, list[Mapping]] = {}
    for row in done:
        groups.setdefault(group_key(row), []).append(row)
    summary = []
    for members in groups.values():
        first = members[0]
        entry = {"role": first.get("role")} | {c: first.get(c) for c in CONFIG_COLUMNS if c != "seed"}
        entry |= {"seeds": sorted(r.get("seed") for r in members), "n": len(members)}
        for metric in metrics:
            values = [r[metric] for r in members if isinstance(r.get(metric), (int, float))]
            entry[metric], entry[f"{metric}_sd"] = _mean_sd(values)
        summary.append(entry)
    roles = {role: i for i, role in reversed(list(enumerate(e["role"] for e in summary)))}  # first-seen order
    return sorted(summary, key=lambda e: (e["dataset"] or "", roles[e["role"]], e["lam"] or 0.0))


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_summary(summary: list[dict], *, metrics: tuple[str, ...] = HEADLINE) -> str:
    """A plain-text table of ``summarize``'s output: one line per model, ``mean ± sd`` per headline metric
    (accuracies in %, seconds as they are)."""
    shown = [m for m in metrics if any(entry.get(m) is not None for entry in summary)]
    head = ["role", "dataset", "λ", "defence", "seeds"] + shown
    lines = [[str(e["role"]), str(e["dataset"]), f"{e['lam']:g}" if e.get("lam") else "0", str(e["defence"]),
              str(e["n"])] + [_cell(m, e.get(m), e.get(f"{m}_sd"), e["n"]) for m in shown] for e in summary]
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *lines])


def _cell(metric: str, mean: float | None, sd: float | None, n: int) -> str:
    if mean is None:
        return "–"
    spread = n > 1  # one seed has no spread to show
    if "seconds" in metric:
        return f"{mean:.0f} ± {sd:.0f} s" if spread else f"{mean:.0f} s"
    if metric.startswith(("grad_norm", "other_log_prob")):
        return f"{mean:.3g} ± {sd:.2g}" if spread else f"{mean:.3g}"
    return f"{100 * mean:.1f} ± {100 * sd:.1f} %" if spread else f"{100 * mean:.1f} %"


def lambda_series(rows: Iterable[Mapping], metric: str, *, dataset: str) -> list[dict]:
    """``metric`` against λ per role on ``dataset``, over seeds: what a λ curve with seed bands draws.

    Returns:
        One dict per role (first-seen order): ``{"role", "regularizer", "defence", "points": [{"lam", "mean", "sd",
        "n", "values", "trials"}]}``, points by λ; a role none of whose finished trials has ``metric`` is left out.
    """
    by_role: dict[str, dict[float, list[Mapping]]] = {}
    first: dict[str, Mapping] = {}
    for row in rows:
        if row.get("status") == "done" and row.get("dataset") == dataset and isinstance(row.get(metric), (int, float)):
            first.setdefault(row["role"], row)
            by_role.setdefault(row["role"], {}).setdefault(float(row.get("lam") or 0.0), []).append(row)
    series = []
    for role, points in by_role.items():
        entries = []
        for lam in sorted(points):
            members = points[lam]
            mean, sd = _mean_sd([r[metric] for r in members])
            entries.append({"lam": lam, "mean": mean, "sd": sd, "n": len(members),
                            "values": [r[metric] for r in members], "trials": [r["trial"] for r in members]})
        series.append({"role": role, "regularizer": first[role].get("regularizer"),
                       "defence": first[role].get("defence"), "points": entries})
    return series


def result_folders(roots: Iterable[str | Path]) -> list[Path]:
    """The folders holding a results table: each root itself, and its direct subfolders (e.g. every sweep under
    the sweeps root, every dataset's zoo under ``checkpoints/``), in name order."""
    found: dict[Path, None] = {}
    for root in map(Path, roots):
        candidates = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        found |= {folder: None for folder in candidates if (folder / RESULTS).is_file()}
    return list(found)
