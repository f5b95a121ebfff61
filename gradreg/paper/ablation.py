"""The recipe ablation: which detail of the authors' training makes Grad Reg (y) at their λ keep its accuracy.

PAPER.md §2: with PyTorch's defaults (Kaiming-uniform init, a learned BatchNorm scale γ, Adam ε 1e-8) ``paper_cnn``
at λ_eff 110 ends at 85 % clean; with the authors' TensorFlow details (Glorot-uniform init, no γ, Adam ε 1e-4) at
99.3 %. Each row here trains one model on the short CPU schedule (``SHORT``) with one detail switched, or with a
narrower network under the authors' recipe, and scores it: clean accuracy on the whole test split and white-box
FGSM on its first ``n_eval`` images. Every row has a plain twin (same network and recipe, λ = 0) for the clean gap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from gradreg.core.config import RECIPES, TrainConfig, config_id
from gradreg.core.data import load_dataset
from gradreg.evaluation.accuracy import robust_accuracy
from gradreg.training.checkpoints import Checkpoint
from gradreg.training.reuse import load_or_train

LAM = 110.0  # the authors' MNIST λ_eff (λ_TF 56234 / 512)
# 2 epochs on 30 000 images, Adam lr 1e-3 with cosine decay, batch 128: what 2 CPU cores train in ~2 min.
SHORT = {"epochs": 2, "n_train": 30000, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine"}
FGSM_EPS = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class Row:
    """One line of the table: a network and the recipe fields it is trained with."""

    name: str
    model: str
    init: str
    bn_scale: bool
    adam_eps: float

    def config(self, *, dataset: str, lam: float, seed: int) -> TrainConfig:
        return TrainConfig(dataset=dataset, model=self.model, init=self.init, bn_scale=self.bn_scale,
                           adam_eps=self.adam_eps, regularizer="grad_y" if lam > 0 else "none", lam=lam, seed=seed,
                           **SHORT)


def _row(name: str, model: str, recipe: str = "authors", **changes) -> Row:
    return Row(name, model, **{**RECIPES[recipe], **changes})


ROWS = (
    _row("PyTorch defaults", "paper_cnn", "torch"),
    _row("+ Xavier init only", "paper_cnn", "torch", init="xavier_uniform"),
    _row("+ no BatchNorm γ only", "paper_cnn", "torch", bn_scale=False),
    _row("+ Adam ε 1e-4 only", "paper_cnn", "torch", adam_eps=1e-4),
    _row("Xavier + no γ (Adam ε 1e-8)", "paper_cnn", "torch", init="xavier_uniform", bn_scale=False),
    _row("authors' recipe", "paper_cnn"),
    _row("authors' recipe, hidden 256", "paper_cnn_h256"),
    _row("authors' recipe, hidden 128", "paper_cnn_h128"),
    _row("authors' recipe, 16/32 filters", "paper_cnn_c16"),
    _row("authors' recipe, 16/32 filters, hidden 256", "paper_cnn_c16_h256"),
    _row("authors' recipe, small_cnn (hidden 128, no BN there)", "small_cnn"),
    _row("PyTorch defaults, small_cnn (the earlier zoo)", "small_cnn", "torch"),
)
OnRow = Callable[[dict], None]


def _score(ckpt: Checkpoint, x, y) -> dict:
    model = ckpt.build()
    fgsm = robust_accuracy(model, x, y, method="fgsm", epsilons=FGSM_EPS)
    return {"clean": ckpt.metrics["test_accuracy"], "final_ce": ckpt.history[-1]["ce"],
            "train_seconds": round(ckpt.train_seconds, 1), "trained_on": ckpt.trained_on,
            **{f"fgsm_{r['eps']:g}": r["accuracy"] for r in fgsm}}


def run_ablation(rows: tuple[Row, ...] = ROWS, *, root: str | Path, dataset: str = "mnist", lams: tuple[float, ...] = (LAM,),
                 seed: int = 0, n_eval: int = 1000, on_row: OnRow | None = None) -> list[dict]:
    """Train (or load from ``root``) each row at every λ in ``lams`` and its plain twin; score them.

    Args:
        root: the directory the models are saved in, so an interrupted ablation resumes where it stopped.
        n_eval: white-box FGSM is scored on the first ``n_eval`` test images; clean accuracy on all of them.
    Returns:
        ``[{"row", "model", "init", "bn_scale", "adam_eps", "lam", "id", "clean", "plain_clean", "clean_gap",
        "fgsm_0.1", "fgsm_0.2", "fgsm_0.3", "final_ce", "train_seconds", "trained_on"}]``; accuracies in [0, 1],
        ``clean_gap`` = plain twin's clean accuracy − this model's.
    """
    x, y = load_dataset(dataset, "test", n=n_eval).tensors
    emit, records, plain = on_row or (lambda record: None), [], {}

    def add(row: Row, config: TrainConfig, twin: dict | None) -> dict:
        scores = _score(load_or_train(config, root=root), x, y)
        records.append(_record(row, config, scores, twin or scores))
        emit(records[-1])
        return scores

    for row in rows:
        twin = row.config(dataset=dataset, lam=0.0, seed=seed)
        if twin not in plain:
            plain[twin] = add(row, twin, None)
        for lam in lams:
            add(row, row.config(dataset=dataset, lam=lam, seed=seed), plain[twin])
    return records


def score_trained(paths: list[Path], *, name: str, n_eval: int = 1000) -> list[dict]:
    """Records, like ``run_ablation``'s, of checkpoints trained elsewhere (e.g. a longer schedule on a GPU), each
    against the plain model of the same network, recipe, schedule and seed among them (itself when there is none)."""
    from gradreg.training.checkpoints import load

    ckpts = [load(path) for path in paths]
    if not ckpts:
        return []
    x, y = load_dataset(ckpts[0].config.dataset, "test", n=n_eval).tensors
    scores = {c.id: _score(c, x, y) | {"schedule": _schedule(c.config)} for c in ckpts}

    def twin(c: Checkpoint) -> dict:
        plain = replace(c.config, regularizer="none", lam=0.0, defence="none")
        return scores.get(config_id(plain), scores[c.id])

    records = [_record(Row(name, c.config.model, c.config.init, c.config.bn_scale, c.config.adam_eps), c.config,
                       scores[c.id] | {"seed": c.config.seed, "regularizer": c.config.regularizer,
                                       "val_by_epoch": [h["val_accuracy"] for h in c.history]},
                       twin(c)) for c in ckpts if c.config.defence == "none"]
    return sorted(records, key=lambda r: (r["model"], r["schedule"], r["regularizer"], r["lam"], r["seed"]))


def _schedule(config: TrainConfig) -> str:
    return (f"{config.epochs} epochs of {config.n_train or 55000} images, batch {config.batch_size}, lr {config.lr:g} "
            f"{config.lr_schedule}")


def _record(row: Row, config: TrainConfig, scores: dict, plain: dict) -> dict:
    return {"row": row.name, "model": row.model, "init": row.init, "bn_scale": row.bn_scale,
            "adam_eps": row.adam_eps, "lam": config.lam, "id": config_id(config), **scores,
            "plain_clean": plain["clean"], "clean_gap": plain["clean"] - scores["clean"]}


def select(rows: tuple[Row, ...], networks: list[str]) -> tuple[Row, ...]:
    """The rows of ``networks`` trained with the authors' recipe, for a λ sweep (``ValueError`` naming the valid
    networks otherwise)."""
    known = sorted({row.model for row in rows})
    unknown = sorted(set(networks) - set(known))
    if unknown:
        raise ValueError(f"unknown ablation networks {unknown}; valid: {', '.join(known)}")
    authors = RECIPES["authors"]
    return tuple(row for row in rows if row.model in networks
                 and (row.init, row.bn_scale, row.adam_eps) == tuple(authors.values()))


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` records updated by ``new`` ones (matched by row and checkpoint id), new ones appended in order."""
    key = lambda r: (r["row"], r["id"])  # noqa: E731
    fresh = {key(r): r for r in new}
    kept = [fresh.pop(key(r), r) for r in old]
    return kept + [r for r in new if key(r) in fresh]


def table(records: list[dict]) -> str:
    """The records as a Markdown table (accuracies in %)."""
    lines = ["| row | network | init | γ | Adam ε | λ_eff | clean % | plain twin % | gap (pts) | FGSM ε .1/.2/.3 % "
             "| final CE | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        fgsm = " / ".join(f"{100 * r[f'fgsm_{e:g}']:.1f}" for e in FGSM_EPS)
        lines.append(f"| {r['row']} | {r['model']} | {r['init']} | {'learned' if r['bn_scale'] else 'none'} | "
                     f"{r['adam_eps']:g} | {r['lam']:g} | {100 * r['clean']:.2f} | {100 * r['plain_clean']:.2f} | "
                     f"{100 * r['clean_gap']:+.2f} | {fgsm} | {r['final_ce']:.3f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def long_table(records: list[dict]) -> str:
    """``score_trained`` records as a Markdown table, with validation accuracy along the run (%)."""
    lines = ["| row | network | penalty | λ_eff | seed | schedule | trained on | clean % | plain % | FGSM ε .1/.2/.3 % | "
             "validation % at epoch 1 / ¼ / ½ / end (best) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        val = r["val_by_epoch"]
        marks = " / ".join(f"{100 * val[i]:.1f}" for i in (0, len(val) // 4, len(val) // 2, len(val) - 1))
        fgsm = " / ".join(f"{100 * r[f'fgsm_{e:g}']:.1f}" for e in FGSM_EPS)
        lines.append(f"| {r['row']} | {r['model']} | {r['regularizer']} | {r['lam']:g} | {r['seed']} | {r['schedule']} | "
                     f"{r['trained_on'].split(',')[0]} | {100 * r['clean']:.2f} | {100 * r['plain_clean']:.2f} | {fgsm} "
                     f"| {marks} ({100 * max(val):.1f}) |")
    return "\n".join(lines)
