"""Reproduction experiments on a trained zoo: the paper's tables and diagnostics as tidy records.

Ross & Doshi-Velez 2018 (arXiv 1711.09404), protocol as restated in PAPER.md §5: clean accuracy, white-box
FGSM/TGSM, FGSM/TGSM transfer matrices among the paper's five models, iterated-TGSM grids judged by an
independent model, JSMA, input-gradient maps and metrics, confidence, gradient norms, white-box PGD and Square
(through the masking checks) and metrics against λ. The verdicts live in ``gradreg.claims``; the report in
``gradreg.report``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import attack
from gradreg.checkpoints import load
from gradreg.config import TrainConfig
from gradreg.data import load_dataset
from gradreg.evaluate import input_gradient_norms, jsma_stats, judge_target_rate, predict, predict_logits, robust_accuracy
from gradreg.masking import masking_checks
from gradreg.training_curves import curve_config, transfer_during_training
from gradreg.transfer import transfer_matrix
from gradreg.zoo import read_manifest

COMPARED = ("plain", "distill", "fgsm_at", "grad_uniform", "grad_y")  # the paper's five (PAPER.md §6)
EXTRAS = ("pgd_at", "both")  # references the paper lacks, for PGD and the masking checks
JUDGES = ("grad_fd", "pgd_at", "both")  # first one present judges the iterated-TGSM images (not in COMPARED)
JUDGE_STEPS = (5, 10)  # iterated-TGSM lengths shown to the judge (the paper's figures use 10)
GRAD_Y_LAMBDA = 10.0  # λ_eff of the compared Grad Reg (y) model (PAPER.md §3: the largest λ that keeps accuracy)
OnStep = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """How many images and which ε each experiment uses (images are the first N of the test split)."""

    n_attack: int = 256  # the paper's first 256 test images
    n_transfer: int = 1000  # a larger set for the transfer matrices (PAPER.md §5: "also report a larger set")
    epsilons: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    white_box_eps: tuple[float, ...] = (0.1, 0.2, 0.3)
    n_jsma: int = 64
    n_masking: int = 128  # PGD, Square and transfer inside the masking checks
    pgd_steps: int = 20
    square_queries: int = 500
    n_saliency: int = 128
    n_maps: int = 8  # digits in the input-gradient figure
    curve_epochs: int = 8  # transferred FGSM during training: Normal and GR(y) retrained for this many epochs
    curve_n_train: int = 10000  # … on this many training images (a CPU budget; the paper trained 70 epochs)
    n_curve: int = 1000  # … and scored on this many test images
    curve_eps: float = 0.2  # PAPER.md §5
    seed: int = 0


PROFILES = {
    "full": Settings(),
    "quick": Settings(n_attack=64, n_transfer=128, epsilons=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), n_jsma=8, n_masking=32,
                      pgd_steps=10, square_queries=100, n_saliency=32, n_maps=4, curve_epochs=2,
                      curve_n_train=1000, n_curve=128),
}
STEPS = ("load", "clean", "white_box", "transfer", "iterated_tgsm", "jsma", "saliency", "confidence", "masking",
         "lambda", "training_curve")


@dataclass
class Reproduction:
    """Everything one run produced: ``records`` (experiment → tidy dicts, JSON-ready), ``arrays`` (tensors for
    the figures: maps, grids, distributions) and ``meta`` (zoo, settings, roles)."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    arrays: dict[str, dict] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def assign_roles(manifest: dict, *, lam: float = GRAD_Y_LAMBDA) -> dict[str, str]:
    """Role (``COMPARED`` + ``EXTRAS`` + ``"judge"``) → zoo entry name, for the entries the zoo has.

    ``grad_y`` is the Grad Reg (y) entry with λ_eff closest to ``lam`` (in log scale)."""
    names = [m["name"] for m in manifest["models"]]
    roles = {role: role for role in COMPARED + EXTRAS if role in names}
    grid = [m for m in manifest["models"] if m["name"].startswith("grad_y_") and m["config"]["lam"] > 0]
    if grid:
        best = min(grid, key=lambda m: abs(math.log(m["config"]["lam"] / lam)))
        roles["grad_y"] = best["name"]
    judge = next((name for name in JUDGES if name in names), None)
    return roles | ({"judge": judge} if judge else {})


def load_models(root: str | Path, roles: dict[str, str], manifest: dict) -> dict[str, nn.Module]:
    """Zoo entry name → frozen eval-mode model, for every role and every Grad Reg (y) grid entry."""
    files = {m["name"]: m["file"] for m in manifest["models"]}
    wanted = set(roles.values()) | {name for name in files if name.startswith("grad_y_")}
    return {name: load(Path(root) / files[name]).build() for name in sorted(wanted)}


def clean_records(manifest: dict, roles: dict[str, str]) -> list[dict]:
    """Clean accuracy on the full test split as recorded in the manifest, one record per role."""
    entries = {m["name"]: m for m in manifest["models"]}
    return [{"model": role, "entry": name, "accuracy": entries[name]["test_accuracy"]}
            for role, name in roles.items()]


def white_box_records(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, s: Settings) -> list[dict]:
    """White-box FGSM and TGSM (target (y + 1) mod K) at ``s.white_box_eps``, per role."""
    out = []
    for role, model in models.items():
        for method in ("fgsm", "tgsm"):
            out += [r | {"model": role} for r in robust_accuracy(model, x, y, method=method,
                                                                epsilons=s.white_box_eps, seed=s.seed)]
    return out


def transfer_records(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, s: Settings) -> list[dict]:
    """FGSM and TGSM transfer matrices (source × scored model × ε) among the compared models."""
    return [r for method in ("fgsm", "tgsm")
            for r in transfer_matrix(models, x, y, method=method, epsilons=s.epsilons, seed=s.seed)]


def class_examples(x: torch.Tensor, y: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each class 0 … k−1 (``(k, C, H, W)``, ``(k,)``), as in the paper's grids."""
    index = torch.stack([(y == c).nonzero()[0, 0] for c in range(k)])
    return x[index], y[index]


def iterated_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 10,
                  eps: float = 0.1) -> torch.Tensor:
    """Iterated TGSM (``steps`` steps of ``eps``, unbounded) from each image toward each class.

    Returns:
        ``(K, K, C, H, W)`` in [0, 1]: row = original image (class y), column = target class.
    """
    k = len(x)
    columns = [attack(model, x, y, "iterated_tgsm", eps=eps, target=torch.full_like(y, t), steps=steps)
               for t in range(k)]
    return torch.stack(columns, dim=1)


def grid_records(grids: dict[str, torch.Tensor], models: dict[str, nn.Module], judge: nn.Module | None) -> list[dict]:
    """Per grid: the crafting model's and the judge's target-class rate over the off-diagonal cells."""
    out = []
    for role, grid in grids.items():
        k = grid.shape[0]
        target = torch.arange(k).repeat(k, 1)  # (K, K): column index
        off = ~torch.eye(k, dtype=torch.bool)
        cells, t = grid[off], target[off]
        record = {"model": role, "model_target_rate": (predict(models[role], cells) == t).float().mean().item(),
                  "n": len(cells)}
        if judge is not None:
            record["judge_target_rate"] = (predict(judge, cells) == t).float().mean().item()
        out.append(record)
    return out


def confidence(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Log-probabilities at T = 1: ``{"predicted": (N,), "other": (N·(K−1),)}`` (PAPER.md §6 histograms)."""
    logp = F.log_softmax(predict_logits(model, x).double(), dim=1)
    top = logp.argmax(1, keepdim=True)
    mask = torch.ones_like(logp, dtype=torch.bool).scatter_(1, top, False)
    return {"predicted": logp.gather(1, top).squeeze(1), "other": logp[mask]}


def confidence_records(dists: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    """Mean and median log-probability of predicted / non-predicted classes per role (−∞ clamped at −1e4)."""
    return [{"model": role, "kind": kind, "mean_logp": v.clamp_min(-1e4).mean().item(),
             "median_logp": v.median().item()} for role, d in dists.items() for kind, v in d.items()]


def norm_records(norms: dict[str, torch.Tensor]) -> list[dict]:
    """Quartiles and mean of ‖∇ₓ CE‖₂ per role."""
    out = []
    for role, v in norms.items():
        q = torch.quantile(v.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        out.append({"model": role, "mean": v.double().mean().item(), "q25": q[0], "median": q[1], "q75": q[2]})
    return out


def masking_records(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, s: Settings, *,
                    sources: dict[str, nn.Module | None]) -> list[dict]:
    """The masking checks of every role (``gradreg.masking``), one record per (model, check)."""
    out = []
    for role, model in models.items():
        checks = masking_checks(model, x, y, epsilons=s.white_box_eps, source=sources.get(role), seed=s.seed,
                                pgd_steps=s.pgd_steps, square_queries=s.square_queries)
        out += [{"model": role, **c} for c in checks]
    return out


def attack_records(masking: list[dict]) -> list[dict]:
    """White-box FGSM / PGD / Square accuracies read back from the masking checks' numbers."""
    out = []
    for r in masking:
        if r["check"] == "iterative_vs_single_step":
            out += [{"model": r["model"], "method": m, "eps": float(eps), "accuracy": v[m]}
                    for eps, v in r["numbers"].items() for m in ("fgsm", "pgd")]
        elif r["check"] == "gradient_free_vs_gradient":
            out += [{"model": r["model"], "method": "square", "eps": float(eps), "accuracy": v["square"]}
                    for eps, v in r["numbers"].items()]
    return out


def lambda_records(manifest: dict, saliency: list[dict]) -> list[dict]:
    """Grad Reg (y) grid: card numbers and map metrics against λ_eff (plain at λ = 0), one record per entry."""
    metrics = {r["entry"]: r for r in saliency}
    out = []
    for m in manifest["models"]:
        if not (m["name"].startswith("grad_y_") or m["name"] == "plain"):
            continue
        card, curve = m["card"], {c["eps"]: c for c in m["card"]["curves"]}
        record = {"entry": m["name"], "lam": m["config"]["lam"], "clean": m["test_accuracy"],
                  "fgsm_0.1": curve.get(0.1, {}).get("fgsm"), "pgd_0.1": curve.get(0.1, {}).get("pgd"),
                  "transfer_fgsm_0.2": curve.get(0.2, {}).get("transfer_fgsm"), "grad_norm": card["grad_norm"],
                  "other_log_prob": card["other_log_prob"]}
        extra = metrics.get(m["name"], {})
        out.append(record | {k: extra.get(k) for k in ("total_variation", "stroke_mass", "alignment", "gini")})
    return out


def curve_records(manifest: dict, roles: dict[str, str], models: dict[str, nn.Module], x: torch.Tensor,
                  y: torch.Tensor, s: Settings) -> list[dict]:
    """Transferred-FGSM accuracy per epoch of Normal and GR(y) retrained from their zoo configs (another seed),
    on FGSM crafted on the zoo's Normal model (``gradreg.training_curves``); empty without both roles."""
    if not {"plain", "grad_y"} <= set(roles):
        return []
    configs = {m["name"]: TrainConfig.from_dict(m["config"]) for m in manifest["models"]}
    retrain = {role: curve_config(configs[roles[role]], epochs=s.curve_epochs, n_train=s.curve_n_train,
                                  seed=s.seed + 1) for role in ("plain", "grad_y")}
    return transfer_during_training(retrain, models[roles["plain"]], x[:s.n_curve], y[:s.n_curve], eps=s.curve_eps)


def settings_dict(s: Settings) -> dict:
    """The settings as a JSON-ready dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}


def _by_role(models: dict[str, nn.Module], roles: dict[str, str], wanted: tuple[str, ...]) -> dict[str, nn.Module]:
    return {role: models[roles[role]] for role in wanted if role in roles}


def _saliency_step(rep: Reproduction, models: dict, roles: dict, x: torch.Tensor, y: torch.Tensor,
                   s: Settings) -> dict[str, dict]:
    """Map metrics per zoo entry (compared roles and the λ grid) and the maps of the figure."""
    from gradreg.metrics import saliency_report
    from gradreg.saliency import saliency

    entries = {name for role, name in roles.items() if role in COMPARED} | {n for n in models if n.startswith("grad_y_")}
    xs, ys = x[:s.n_saliency], y[:s.n_saliency]
    by_entry = {name: saliency_report(models[name], xs, ys) | {"entry": name} for name in sorted(entries)}
    rep.records["saliency"] = [by_entry[roles[role]] | {"model": role} for role in COMPARED if role in roles]
    five = _by_role(models, roles, COMPARED)
    rep.arrays["maps"] = {role: saliency(m, x[:s.n_maps], "true", "input_gradient", y=y[:s.n_maps])
                          for role, m in five.items()}
    rep.arrays["map_images"] = {"x": x[:s.n_maps], "y": y[:s.n_maps]}
    return by_entry


def _targeted_steps(rep: Reproduction, five: dict[str, nn.Module], judge: nn.Module | None, x: torch.Tensor,
                    y: torch.Tensor, s: Settings, on_step: OnStep) -> None:
    """Iterated-TGSM grids and the judge's rates; JSMA success and L0 (records and grids into ``rep``)."""
    xa, ya = x[:s.n_attack], y[:s.n_attack]
    on_step("iterated_tgsm")
    xc, yc = class_examples(x, y, int(y.max()) + 1)
    rep.arrays["grids"] = {role: iterated_grid(m, xc, yc) for role, m in five.items()}
    rep.records["iterated_grid"] = grid_records(rep.arrays["grids"], five, judge)
    rep.records["judge"] = ([judge_target_rate(m, judge, xa, ya, steps=k) | {"model": role, "steps": k}
                             for k in JUDGE_STEPS for role, m in five.items()] if judge is not None else [])
    on_step("jsma")
    rep.records["jsma"] = [jsma_stats(m, x[:s.n_jsma], y[:s.n_jsma], seed=s.seed) | {"model": role}
                           for role, m in five.items()]


def run_experiments(manifest: dict, roles: dict[str, str], models: dict[str, nn.Module], x: torch.Tensor,
                    y: torch.Tensor, *, settings: Settings, on_step: OnStep) -> Reproduction:
    """Run every experiment (``STEPS`` after "load") on the test images ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``.

    Args:
        roles: role → zoo entry name (``assign_roles``); models: zoo entry name → model (``load_models``).
    Returns:
        The ``Reproduction``; records keyed by experiment, each record naming its role under ``"model"``.
    """
    s, rep = settings, Reproduction()
    five, judge = _by_role(models, roles, COMPARED), models.get(roles.get("judge", ""))
    everyone = _by_role(models, roles, COMPARED + EXTRAS + ("judge",))
    xa, ya = x[:s.n_attack], y[:s.n_attack]
    on_step("clean")
    rep.records["clean"] = clean_records(manifest, roles)
    on_step("white_box")
    rep.records["white_box"] = white_box_records(everyone, xa, ya, s)
    on_step("transfer")
    rep.records["transfer"] = transfer_records(five, x[:s.n_transfer], y[:s.n_transfer], s)
    _targeted_steps(rep, five, judge, x, y, s, on_step)
    on_step("saliency")
    by_entry = _saliency_step(rep, models, roles, x, y, s)
    on_step("confidence")
    rep.arrays["confidence"] = {role: confidence(m, xa) for role, m in everyone.items()}
    rep.arrays["grad_norms"] = {role: input_gradient_norms(m, xa, ya) for role, m in everyone.items()}
    rep.records["confidence"] = confidence_records(rep.arrays["confidence"])
    rep.records["grad_norms"] = norm_records(rep.arrays["grad_norms"])
    on_step("masking")
    masked = _by_role(models, roles, COMPARED + EXTRAS)
    sources = {role: (judge if role == "plain" else five.get("plain")) for role in masked}
    rep.records["masking"] = masking_records(masked, x[:s.n_masking], y[:s.n_masking], s, sources=sources)
    rep.records["attacks"] = attack_records(rep.records["masking"])
    on_step("lambda")
    rep.records["lambda"] = lambda_records(manifest, list(by_entry.values()))
    on_step("training_curve")
    rep.records["training_curve"] = curve_records(manifest, roles, models, x, y, s)
    rep.meta = {"dataset": manifest["dataset"], "roles": roles, "zoo_n_eval": manifest.get("n_eval"), "settings": settings_dict(s),
                "zoo": {m["name"]: {"id": m["id"], "config": m["config"], "train_seconds": m["train_seconds"],
                                    "code_version": m["code_version"]} for m in manifest["models"]}}
    return rep


def run(root: str | Path, *, settings: Settings = PROFILES["full"], lam: float = GRAD_Y_LAMBDA,
        on_step: OnStep | None = None) -> Reproduction:
    """Run every experiment on the zoo in ``root`` (its ``manifest.json``).

    Args:
        settings: image counts and ε grids (``PROFILES["full"]`` or ``["quick"]``); lam: λ_eff of the compared
            Grad Reg (y) model (the nearest grid entry is used); on_step: called with each name in ``STEPS``.
    """
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no zoo manifest in {root}: build one with `python -m gradreg zoo`")
    step = on_step or (lambda name: None)
    step("load")
    roles = assign_roles(manifest, lam=lam)
    models = load_models(root, roles, manifest)
    x, y = load_dataset(manifest["dataset"], "test").tensors
    return run_experiments(manifest, roles, models, x, y, settings=settings, on_step=step)
