"""Gradient-masking checks: named checks with numbers and a verdict, plus confidence and gradient statistics.

The checks follow Athalye, Carlini & Wagner 2018 (arXiv 1802.00420) and Carlini et al. 2019 (arXiv 1902.06705),
as listed in PAPER.md §8: iterative ≤ single-step accuracy, and single-step not far above iterative accuracy (the
illusion single-step adversarial training gives); white-box ≤ transfer accuracy; accuracy → ~0 at a
large ε; a gradient-free attack not stronger than gradient attacks; no exactly-zero input gradients. Defensive
distillation (gradient underflow) and FGSM adversarial training are the paper's masked models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gradreg.attacks import check_eps, check_epsilons, loss_gradient
from gradreg.core.modules import eval_mode, model_device
from gradreg.core.validation import check_labelled, check_real
from gradreg.evaluation.accuracy import CHUNK, chunks, predict_logits, robust_accuracy
from gradreg.evaluation.transfer import transfer_matrix

PASS, FAIL, SKIPPED, INFO = "pass", "fail", "skipped", "info"


def _check(name: str, failed: bool | None, numbers: dict, detail: str) -> dict:
    verdict = SKIPPED if failed is None else FAIL if failed else PASS
    return {"check": name, "verdict": verdict, "numbers": numbers, "detail": detail}


def _by_eps(records: list[dict]) -> dict[float, float]:
    return {r["eps"]: r["accuracy"] for r in records}


def _gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """∇ₓ CE per example, flattened ``(N, D)`` on the CPU."""
    with eval_mode(model):
        return torch.cat([loss_gradient(model, xb, yb).flatten(1).cpu()
                          for _, xb, yb in chunks(x, y, model_device(model), batch_size=batch_size)])


def confidence_stats(model: nn.Module, x: torch.Tensor) -> dict:
    """Log-probabilities at T = 1 (PAPER.md §6: ≈ −27 on non-predicted classes for normal MNIST models, ≈ −12
    for gradient-regularized ones). Returns ``{"predicted_logp_mean", "other_logp_mean", "other_logp_median",
    "saturated_fraction"}``; saturated = the predicted probability rounds to exactly 1 in float32."""
    logp = torch.log_softmax(predict_logits(model, x).float(), dim=1)
    top = logp.argmax(1, keepdim=True)
    others = logp.scatter(1, top, float("nan"))
    return {"predicted_logp_mean": logp.gather(1, top).mean().item(),
            "other_logp_mean": others.nanmean().item(), "other_logp_median": others.nanmedian().item(),
            "saturated_fraction": (logp.gather(1, top).exp() == 1).float().mean().item()}


def gradient_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = CHUNK) -> dict:
    """‖∇ₓ CE‖₂ statistics and exact zeros. Returns ``{"norm_mean", "norm_median", "norm_q25", "norm_q75",
    "norm_min", "norm_max", "zero_example_fraction", "zero_entry_fraction"}``."""
    check_labelled(model, x, y)
    grads = _gradients(model, x, y, batch_size)
    norms = grads.double().norm(dim=1)  # float32 squares of tiny (denormal) gradients would underflow to 0
    q = torch.quantile(norms.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return {"norm_mean": norms.mean().item(), "norm_median": q[1], "norm_q25": q[0], "norm_q75": q[2],
            "norm_min": norms.min().item(), "norm_max": norms.max().item(),
            "zero_example_fraction": (grads == 0).all(dim=1).float().mean().item(),
            "zero_entry_fraction": (grads == 0).float().mean().item()}


def _attack_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: list[float], large_eps: float,
                 illusion_eps: float, *, pgd_steps: int, square_queries: int, seed: int | None,
                 batch_size: int) -> dict:
    run = {"seed": seed, "batch_size": batch_size}
    knobs = {"fgsm": {}, "pgd": {"steps": pgd_steps}, "square": {"queries": square_queries}}
    plan = attack_plan(eps_list, large_eps=large_eps, illusion_eps=illusion_eps)
    return {method: _by_eps(robust_accuracy(model, x, y, method=method, epsilons=epsilons, **knobs[method], **run))
            for method, epsilons in plan.items()}


def _transfer_check(model: nn.Module, source: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                    eps_list: list[float], white: dict, tolerance: float, batch_size: int) -> dict:
    name = "white_box_vs_transfer"
    if source is None:
        return _check(name, None, {}, "no source model given: pass source= to compare against transferred FGSM")
    records = transfer_matrix({"source": source, "model": model}, x, y, method="fgsm", epsilons=eps_list,
                              batch_size=batch_size)
    transfer = {r["eps"]: r["accuracy"] for r in records if r["source"] == "source" and r["model"] == "model"}
    numbers = {eps: {"white_box_fgsm": white[eps], "transfer_fgsm": transfer[eps]} for eps in eps_list}
    bad = [eps for eps in eps_list if white[eps] > transfer[eps] + tolerance]
    return _check(name, bool(bad), numbers, f"white-box FGSM beats transferred FGSM by > {tolerance:.0%} at ε {bad}: "
                  "the model's own gradient is a worse guide than another model's (masking)" if bad else
                  "white-box FGSM is at least as strong as FGSM transferred from the source model")


def _iterative_check(acc: dict, eps_list: list[float], tolerance: float) -> dict:
    weaker = [eps for eps in eps_list if acc["pgd"][eps] > acc["fgsm"][eps] + tolerance]
    return _check("iterative_vs_single_step", bool(weaker),
                  {eps: {"fgsm": acc["fgsm"][eps], "pgd": acc["pgd"][eps]} for eps in eps_list},
                  f"PGD is weaker than FGSM at ε {weaker}: the loss surface misleads iterative steps" if weaker else
                  "PGD is at least as strong as FGSM at every ε")


def _single_step_check(acc: dict, eps: float, gap: float) -> dict:
    fgsm, pgd = acc["fgsm"][eps], acc["pgd"][eps]
    illusory = fgsm - pgd > gap
    return _check("single_step_illusion", illusory, {"eps": eps, "fgsm": fgsm, "pgd": pgd},
                  f"at ε {eps:g} FGSM leaves {fgsm:.1%} and PGD {pgd:.1%}: "
                  + (f"single-step robustness is illusory (gap > {gap:.0%}; the signature of single-step "
                     "adversarial training)" if illusory else f"the single-step number is within {gap:.0%} of PGD's"))


def _gradient_free_check(acc: dict, eps_list: list[float], tolerance: float) -> dict:
    best = {eps: min(acc["fgsm"][eps], acc["pgd"][eps]) for eps in eps_list}
    stronger = [eps for eps in eps_list if acc["square"][eps] < best[eps] - tolerance]
    return _check("gradient_free_vs_gradient", bool(stronger),
                  {eps: {"square": acc["square"][eps], "best_gradient": best[eps]} for eps in eps_list},
                  f"gradient-free Square beats the gradient attacks at ε {stronger}: gradients are masked"
                  if stronger else "the gradient attacks are at least as strong as gradient-free Square")


def _statistics(model: nn.Module, x: torch.Tensor, grads: dict, zero_limit: float) -> list[dict]:
    zero = grads["zero_example_fraction"]
    return [
        _check("zero_gradients", zero > zero_limit,
               {k: grads[k] for k in ("zero_example_fraction", "zero_entry_fraction")},
               f"{zero:.1%} of examples have an exactly-zero input gradient (limit {zero_limit:.0%})"
               + (": FGSM cannot move them (gradient underflow)" if zero > zero_limit else "")),
        {"check": "confidence", "verdict": INFO, "numbers": confidence_stats(model, x),
         "detail": "log-probabilities at T = 1 (paper: ≈ −27 on non-predicted classes for normal models)"},
        {"check": "input_gradients", "verdict": INFO, "numbers": grads, "detail": "‖∇ₓ CE‖₂ per example"},
    ]


def masking_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilons: Sequence[float] = (0.1, 0.2, 0.3),
                   large_eps: float = 0.5, source: nn.Module | None = None, tolerance: float = 0.02,
                   chance: float = 0.1, zero_limit: float = 0.01, illusion_eps: float = 0.3,
                   illusion_gap: float = 0.3, pgd_steps: int = 40,
                   square_queries: int = 1000,
                   seed: int | None = 0, batch_size: int = CHUNK) -> list[dict]:
    """Run the gradient-masking checks on ``model``; each record carries its numbers and a verdict.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; y: labels ``(N,)``; epsilons: L∞ radii in pixel units.
        large_eps: ε at which PGD accuracy should fall to ``chance`` or below; source: an independently trained
            model for the transfer check (skipped when None); tolerance: accuracy slack for comparisons, in [0, 1];
        zero_limit: largest acceptable fraction of examples with an exactly-zero input gradient.
        illusion_eps, illusion_gap: largest acceptable lead of FGSM over PGD accuracy at ``illusion_eps`` (the
            paper's adversarial-training ε): FGSM adversarial training keeps FGSM accuracy near clean there while PGD
            breaks it (Tramèr et al. 2018, arXiv 1705.07204; Wong et al. 2020, arXiv 2001.03994).
    Returns:
        ``[{"check", "verdict", "numbers", "detail"}]``, verdict ∈ {"pass", "fail", "skipped", "info"}; "fail"
        means masking is suspected. The last two records ("confidence", "input_gradients") are statistics.
    """
    eps_list = check_epsilons(epsilons)
    check_eps(large_eps)
    check_eps(illusion_eps)
    check_labelled(model, x, y)
    if source is not None:
        check_labelled(source, x, y)
    for name, value in (("tolerance", tolerance), ("chance", chance), ("zero_limit", zero_limit),
                        ("illusion_gap", illusion_gap)):
        check_real(name, value, low=0.0, high=1.0)
    acc = _attack_grid(model, x, y, eps_list, large_eps, illusion_eps, pgd_steps=pgd_steps,
                       square_queries=square_queries, seed=seed, batch_size=batch_size)
    return checks_from_accuracies(model, x, y, acc, epsilons=eps_list, large_eps=large_eps, source=source,
                                  tolerance=tolerance, chance=chance, zero_limit=zero_limit, illusion_eps=illusion_eps,
                                  illusion_gap=illusion_gap, batch_size=batch_size)


def attack_plan(epsilons: Sequence[float], *, large_eps: float = 0.5, illusion_eps: float = 0.3) -> dict:
    """The white-box accuracies ``masking_checks`` needs: ``{"fgsm" | "pgd" | "square": [ε, ...]}``."""
    eps_list = list(epsilons)
    single = list(dict.fromkeys(eps_list + [illusion_eps]))
    return {"fgsm": single, "pgd": list(dict.fromkeys(single + [large_eps])), "square": eps_list}


def checks_from_accuracies(model: nn.Module, x: torch.Tensor, y: torch.Tensor, acc: dict, *,
                           epsilons: Sequence[float], large_eps: float = 0.5, source: nn.Module | None = None,
                           tolerance: float = 0.02, chance: float = 0.1, zero_limit: float = 0.01,
                           illusion_eps: float = 0.3, illusion_gap: float = 0.3, batch_size: int = CHUNK) -> list[dict]:
    """``masking_checks`` from white-box accuracies already measured on ``x`` (``acc``: ``{"fgsm" | "pgd" |
    "square": {ε: accuracy}}`` at the ε of ``attack_plan``), so a caller can compute them in pieces; the transfer
    check and the gradient statistics run here."""
    eps_list = list(epsilons)
    large = acc["pgd"][large_eps]
    return [
        _iterative_check(acc, eps_list, tolerance),
        _transfer_check(model, source, x, y, eps_list, acc["fgsm"], tolerance, batch_size),
        _check("large_eps", large > chance, {"eps": large_eps, "pgd": large},
               f"PGD accuracy at ε = {large_eps} is {large:.1%}, expected ≤ {chance:.0%}"),
        _gradient_free_check(acc, eps_list, tolerance),
        _single_step_check(acc, illusion_eps, illusion_gap),
        *_statistics(model, x, gradient_stats(model, x, y, batch_size=batch_size), zero_limit),
    ]
