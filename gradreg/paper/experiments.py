"""The reproduction's experiments, one record builder each: tidy dicts (JSON-ready) from models and test tensors.

Ross & Doshi-Velez 2018 (arXiv 1711.09404), protocol as restated in PAPER.md §5. ``gradreg.paper.reproduce`` runs
them on a zoo in order; ``Settings`` says how many images and which ε each one uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import attack
from gradreg.core.config import TrainConfig
from gradreg.evaluation.accuracy import predict, predict_logits, robust_accuracy
from gradreg.evaluation.masking import masking_checks
from gradreg.evaluation.transfer import transfer_matrix
from gradreg.paper.training_curves import curve_config, transfer_during_training


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
                  step_size: float = 0.1) -> torch.Tensor:
    """Iterated TGSM (``steps`` steps of ``step_size``, unbounded) from each image toward each class.

    Returns:
        ``(K, K, C, H, W)`` in [0, 1]: row = original image (class y), column = target class.
    """
    k = len(x)
    columns = [attack(model, x, y, "iterated_tgsm", step_size=step_size, target=torch.full_like(y, t), steps=steps)
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
    """The masking checks of every role (``gradreg.evaluation.masking``), one record per (model, check)."""
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


SEED_KEYS = ("fgsm", "pgd", "transfer_fgsm")


def seed_records(manifest: dict, roles: dict[str, str]) -> list[dict]:
    """Each role's zoo entry and its replicas with other seeds (the manifest's ``"replicas"``), one record per
    seed: clean test accuracy and the card's white-box FGSM / PGD and transferred FGSM at each card ε."""
    members: dict[str, list[dict]] = {}
    for entry in manifest["models"]:
        members.setdefault(entry["name"], []).append(entry)
    for entry in manifest.get("replicas", []):
        members.setdefault(entry["name"].rsplit("-seed", 1)[0], []).append(entry)
    out = []
    for role, name in roles.items():
        for entry in members.get(name, []) if len(members.get(name, [])) > 1 else []:
            record = {"model": role, "entry": entry["name"], "seed": entry["config"]["seed"],
                      "clean": entry["test_accuracy"]}
            for point in entry["card"]["curves"]:
                record |= {f"{k}_{point['eps']:g}": point[k] for k in SEED_KEYS}
            out.append(record)
    return out


def zoo_curve_records(manifest: dict, roles: dict[str, str]) -> list[dict]:
    """The training curves the zoo recorded while it trained (replicas of Normal and GR(y) scored after every epoch
    on FGSM crafted on the zoo's Normal model), as ``curve_records`` gives them; empty when it recorded none, or
    when its learning rate was not constant (the paper's protocol: a decaying rate flattens the curve's end)."""
    out = []
    for entry in manifest.get("replicas", []):
        name = entry["name"].rsplit("-seed", 1)[0]
        role = next((r for r in ("plain", "grad_y") if roles.get(r) == name), None)
        constant = entry["config"].get("lr_schedule") == "constant"
        if role is not None and constant and isinstance(entry.get("curve"), dict) and not any(
                r["model"] == role for r in out):
            out += [{"model": role, "entry": entry["name"], **r} for r in entry["curve"]["records"]]
    return out if {r["model"] for r in out} == {"plain", "grad_y"} else []


def curve_records(manifest: dict, roles: dict[str, str], models: dict[str, nn.Module], x: torch.Tensor,
                  y: torch.Tensor, s: Settings) -> list[dict]:
    """Transferred-FGSM accuracy per epoch of Normal and GR(y): as the zoo recorded it while training their
    replicas (``zoo_curve_records``), else retrained here from their zoo configs (another seed, ``s.curve_epochs``
    epochs on ``s.curve_n_train`` images), on FGSM crafted on the zoo's Normal model; empty without both roles."""
    if not {"plain", "grad_y"} <= set(roles):
        return []
    recorded = zoo_curve_records(manifest, roles)
    if recorded:
        return recorded
    configs = {m["name"]: TrainConfig.from_dict(m["config"]) for m in manifest["models"]}
    retrain = {role: curve_config(configs[roles[role]], epochs=s.curve_epochs, n_train=s.curve_n_train,
                                  seed=s.seed + 1) for role in ("plain", "grad_y")}
    return transfer_during_training(retrain, models[roles["plain"]], x[:s.n_curve], y[:s.n_curve], eps=s.curve_eps)


def settings_dict(s: Settings) -> dict:
    """The settings as a JSON-ready dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
