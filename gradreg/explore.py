"""What the dashboard's pages show, as plain data: model catalogues, λ sweeps from the zoo's cards, attack panels,
saliency comparisons and background training jobs. No Streamlit here: ``gradreg.ui`` caches these by ids and
numbers, and the tests call them directly.

The views follow Ross & Doshi-Velez (AAAI 2018, https://arxiv.org/abs/1711.09404), PAPER.md §5–7.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradreg import checkpoints
from gradreg.attacks import attack, get_attack, resolve_target
from gradreg.config import TrainConfig, config_id
from gradreg.evaluate import predict_logits
from gradreg.metrics import saliency_report
from gradreg.randomization import randomization_check
from gradreg.saliency import saliency
from gradreg.zoo import AUTHORS_LAM, AUTHORS_LAM_UNIFORM, REFERENCE

# The authors' MNIST choices (PAPER.md §1), marked on the λ explorer's axis.
AUTHORS_LAMBDAS = {"grad_y": AUTHORS_LAM, "grad_uniform": AUTHORS_LAM_UNIFORM}
CARD_KEYS = ("clean", "fgsm", "pgd", "transfer_fgsm", "grad_norm", "max_prob", "other_log_prob")
TARGET_NAMES = ("next", "least_likely", "random")


def catalogue(manifest: Mapping | None, zoo_root: str | Path, user_root: str | Path) -> list[dict]:
    """Every checkpoint file in the user and zoo directories as a plain row, zoo entries carrying their card.

    Returns:
        ``[{"id", "name", "source", "path", "ok", "reason", "complete", "test_accuracy", "card", **config}]``:
        user models first, then the zoo's in manifest order (named as there), then other files of the zoo
        directory; unusable files have ``ok=False`` and a reason.
    """
    entries = {entry["id"]: entry for entry in (manifest or {}).get("models", [])}
    order = {checkpoint_id: i for i, checkpoint_id in enumerate(entries)}  # the zoo's own order: plain, λ grid…
    rows, seen = [], set()
    for source, root in (("user", Path(user_root)), ("zoo", Path(zoo_root))):
        for info in checkpoints.list_checkpoints(root):
            if info.path.resolve() in seen:
                continue
            seen.add(info.path.resolve())
            entry = entries.get(info.id, {}) if info.ok else {}
            row = {"id": info.id, "name": entry.get("name", ""), "source": source, "path": str(info.path),
                   "ok": info.ok, "reason": info.reason, "complete": info.complete,
                   "test_accuracy": info.metrics.get("test_accuracy"), "card": entry.get("card")}
            rows.append(row | (info.config.to_dict() if info.config is not None else {}))
    return sorted(rows, key=lambda r: (r["source"] != "user", order.get(r["id"], len(order))))


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


def lambda_sweep(manifest: Mapping, regularizer: str, eps: float) -> list[dict]:
    """One record per λ_eff of ``regularizer`` (sorted), each ``{"name", "id", "lam", **card_values}``."""
    rows = [{"name": e["name"], "id": e["id"], "lam": float(e["config"]["lam"]), **card_values(e["card"], eps)}
            for e in manifest.get("models", []) if e.get("card") and e["config"]["regularizer"] == regularizer
            and e["config"]["defence"] == "none"]
    return sorted(rows, key=lambda r: r["lam"])


def showcase(manifest: Mapping, *, eps: float = 0.1, tolerance: float = 0.02) -> tuple[dict, dict] | None:
    """(plain entry, the Grad Reg (y) entry with the best white-box FGSM accuracy at ``eps`` among those whose clean
    accuracy is within ``tolerance`` of the plain model's), or None when the zoo lacks either."""
    plain = reference_entry(manifest)
    sweep = lambda_sweep(manifest, "grad_y", eps)
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


def thumbnail_strip(x: np.ndarray, *, scale: int = 3, gap: int = 2) -> np.ndarray:
    """Images ``(N, C, H, W)`` in [0, 1] side by side as one greyscale ``uint8`` array, upscaled ``scale``×
    (nearest neighbour) with ``gap``-pixel light separators."""
    planes = [np.pad(np.asarray(img).mean(0), ((0, 0), (0, gap)), constant_values=0.75) for img in x]
    strip = np.concatenate(planes, axis=1)
    return (np.kron(strip, np.ones((scale, scale))) * 255).round().astype(np.uint8)


def gallery(y: torch.Tensor | np.ndarray, *, per_class: int = 8) -> dict[int, list[int]]:
    """Class → the indices of its first ``per_class`` examples in ``y`` ``(N,)``."""
    labels = np.asarray(y)
    return {int(k): np.flatnonzero(labels == k)[:per_class].tolist() for k in np.unique(labels)}


def saliency_maps(model: nn.Module, x: torch.Tensor, *, method: str = "input_gradient", target: str | int = "pred",
                  y: torch.Tensor | None = None, **params) -> np.ndarray:
    """Signed attribution maps of ``method`` for ``x`` ``(N, C, H, W)``: float32 numpy ``(N, C, H, W)``."""
    return saliency(model, x, target, method, y=y, **params).numpy().astype(np.float32)


def _resolve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: str | int | None,
             seed: int) -> torch.Tensor:
    """Target classes ``(N,)``: a class for all, or one of ``TARGET_NAMES`` (default "next", the paper's)."""
    target = "next" if target is None else target
    if isinstance(target, int):
        return torch.full_like(y, target)
    return resolve_target(model, x, y, target, generator=torch.Generator().manual_seed(seed))


def attack_panel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str, eps: float,
                 target: str | int | None = None, seed: int = 0, saliency_method: str = "input_gradient",
                 **params) -> dict:
    """One image attacked on one model, with what the attack lab shows.

    Args:
        x: one image ``(1, C, H, W)`` in [0, 1]; y: its label ``(1,)``; method: a key of ``ATTACKS``; eps: its ε
            (pixel units); target: targeted attacks only, a class or one of ``TARGET_NAMES``; params: the knobs.
    Returns:
        numpy ``image``, ``adversarial``, ``perturbation`` ``(C, H, W)``; ``saliency_clean`` / ``saliency_adv``
        (``saliency_method`` for the predicted class); ``probs_clean`` / ``probs_adv`` ``(K,)``; ints ``label``,
        ``pred_clean``, ``pred_adv``, ``target`` (−1 if untargeted); floats ``linf``, ``l2``, ``l0`` (pixels changed).
    """
    spec = get_attack(method)
    t = _resolve(model, x, y, target, seed) if spec.targeted else None  # resolved here to name the class
    x_adv = attack(model, x, y, method, eps=eps, target=t, seed=seed, **params)
    probs = F.softmax(predict_logits(model, torch.cat([x, x_adv])), dim=1).numpy()
    delta = (x_adv - x)[0]
    return {"image": x[0].numpy(), "adversarial": x_adv[0].numpy(), "perturbation": delta.numpy(),
            "saliency_clean": saliency_maps(model, x, method=saliency_method)[0],
            "saliency_adv": saliency_maps(model, x_adv, method=saliency_method)[0],
            "probs_clean": probs[0], "probs_adv": probs[1], "label": int(y[0]), "pred_clean": int(probs[0].argmax()),
            "pred_adv": int(probs[1].argmax()), "target": int(t[0]) if t is not None else -1,
            "linf": float(delta.abs().max()), "l2": float(delta.norm()), "l0": float((delta != 0).sum())}


def eps_range(method: str, norm: str = "linf") -> tuple[str, float, float, float]:
    """What ε means for ``method``: (slider title, largest sensible value, default, step), pixel units of [0, 1]."""
    if method == "iterated_tgsm":
        return "step size ε per step (no ε-ball)", 0.3, 0.1, 0.01
    if method == "jsma":
        return "θ, per-pixel increase", 1.0, 1.0, 0.05
    return ("ε, L2 radius", 5.0, 1.0, 0.05) if norm == "l2" else ("ε, L∞ radius", 0.5, 0.1, 0.01)


def attack_summary(name: str, panel: Mapping) -> str:
    """One markdown line: the model, its prediction before → after, and the perturbation's size."""
    fooled, targeted = panel["pred_adv"] != panel["label"], panel["target"] >= 0
    verdict = ("reached the target" if targeted and panel["pred_adv"] == panel["target"]
               else "fooled" if fooled else "still correct")
    target = f" · target {panel['target']}" if targeted else ""
    return (f"{':red[✗]' if fooled else ':green[✓]'} **{name}** · label {panel['label']}{target} · predicted "
            f"{panel['pred_clean']} ({panel['probs_clean'].max():.0%}) → **{panel['pred_adv']}** "
            f"({panel['probs_adv'].max():.0%}), {verdict} · ‖δ‖∞ = {panel['linf']:.3f}, ‖δ‖₂ = {panel['l2']:.2f}, "
            f"{panel['l0']:.0f} pixels changed")


def metrics_row(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str) -> dict[str, float]:
    """The saliency metrics of ``method`` on ``x`` (means over the images), with the randomization similarity."""
    report = saliency_report(model, x, y, method=method, curve_steps=14)
    return {k: v for k, v in report.items() if k not in ("method", "n")}


def randomization_records(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str) -> list[dict]:
    """The cascading model-randomization check (Adebayo et al. 2018) of ``method``: records per re-initialized layer."""
    return randomization_check(model, x, "true", y=y, method=method)


class TrainingJob:
    """One training run in a background thread: stoppable, polled for progress, saved to ``root`` when complete.

    The thread never touches the UI; readers call ``snapshot`` (a consistent copy under a lock).
    """

    def __init__(self, config: TrainConfig, *, root: str | Path | None = None) -> None:
        self.config, self.id, self.root = config, config_id(config), root
        self._stop, self._lock = threading.Event(), threading.Lock()
        total = config.epochs * (2 if config.defence == "distill" else 1)  # distillation trains a teacher first
        self._state = {"id": self.id, "state": "running", "phase": "", "batch": 0, "batches": 0, "running": {},
                       "epochs": [], "epochs_total": total, "result": None, "error": ""}
        self._thread = threading.Thread(target=self._run, name=f"train-{self.id}", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after the current batch; nothing is saved then."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> dict:
        """``{"id", "state" ∈ running/done/stopped/failed, "phase", "batch", "batches", "running", "epochs",
        "epochs_total", "result", "error"}``; ``epochs`` holds one EpochStats dict per finished epoch."""
        with self._lock:
            return {**self._state, "epochs": list(self._state["epochs"]), "running": dict(self._state["running"])}

    def _update(self, **changes) -> None:
        with self._lock:
            self._state.update(changes)

    def _on_batch(self, batch: int, batches: int, running: dict) -> bool:
        self._update(batch=batch, batches=batches, running=dict(running))
        return self._stop.is_set()

    def _on_epoch(self, stats) -> bool:
        with self._lock:
            self._state["epochs"].append(asdict(stats))
            self._state["phase"], self._state["batch"] = stats.phase, 0
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            ckpt = checkpoints.load_or_train(self.config, root=self.root, on_epoch=self._on_epoch,
                                             on_batch=self._on_batch, stop=self._stop)
        except Exception as err:  # reported to the page as text; the thread must not die silently
            self._update(state="failed", error=f"{type(err).__name__}: {err}")
            return
        result = {"id": ckpt.id, **ckpt.metrics}
        self._update(state="done" if ckpt.complete else "stopped", result=result)


def progress(snapshot: Mapping) -> float:
    """Fraction of a job's batches done, in [0, 1] (both phases of a distillation count)."""
    done = len(snapshot["epochs"]) + (snapshot["batch"] / snapshot["batches"] if snapshot["batches"] else 0.0)
    finished = snapshot["state"] == "done"
    return 1.0 if finished else min(done / max(snapshot["epochs_total"], 1), 1.0)


def same_dataset(rows: Sequence[Mapping]) -> str | None:
    """The dataset all ``rows`` were trained on, or None when they differ (or there are none)."""
    names = {row["dataset"] for row in rows}
    return names.pop() if len(names) == 1 else None
