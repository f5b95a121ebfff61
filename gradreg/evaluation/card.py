"""A model's card: clean accuracy, accuracy under white-box FGSM and PGD and under FGSM transferred from a reference
model, the mean input-gradient norm and confidence, on one image set — the zoo's and every sweep trial's summary.

The transferred attack follows Ross & Doshi-Velez 2018 (arXiv 1711.09404, PAPER.md §5): examples crafted on the
plain model, evaluated on the others; ``other_log_prob`` is their confidence measure (PAPER.md §6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks import single_step_sweep
from gradreg.evaluation.accuracy import accuracy, input_gradient_norms, predict_logits, robust_accuracy

CARD_EPSILONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def _transfer_accuracy(model: nn.Module, reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       epsilons: tuple[float, ...]) -> list[float]:
    return [accuracy(model, x_adv, y) for x_adv in single_step_sweep(reference, x, y, epsilons=epsilons)]


def model_card(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, reference: nn.Module | None = None,
               epsilons: tuple[float, ...] = CARD_EPSILONS, pgd_steps: int = 20) -> dict:
    """Robustness and confidence summary of one model on ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``.

    Returns:
        ``{"n", "clean", "grad_norm", "max_prob", "other_log_prob", "curves": [{"eps", "fgsm", "pgd",
        "transfer_fgsm"}]}``; accuracies in [0, 1]; ``other_log_prob`` is the mean log-probability of the
        non-predicted classes (PAPER.md §6: ≈ −12 for Grad Reg vs ≈ −27 for plain); ``transfer_fgsm`` is None
        without a reference model.
    """
    fgsm = robust_accuracy(model, x, y, method="fgsm", epsilons=epsilons)
    pgd = robust_accuracy(model, x, y, method="pgd", epsilons=epsilons, steps=pgd_steps)
    transfer = (_transfer_accuracy(model, reference, x, y, epsilons) if reference is not None
                else [None] * len(epsilons))
    log_probs = F.log_softmax(predict_logits(model, x), dim=1)
    others = log_probs.clone().scatter_(1, log_probs.argmax(1, keepdim=True), float("nan"))
    curves = [{"eps": eps, "fgsm": f["accuracy"], "pgd": p["accuracy"], "transfer_fgsm": t}
              for eps, f, p, t in zip(epsilons, fgsm, pgd, transfer)]
    return {"n": len(x), "clean": accuracy(model, x, y), "grad_norm": input_gradient_norms(model, x, y).mean().item(),
            "max_prob": log_probs.max(1).values.exp().mean().item(),
            "other_log_prob": others.nanmean().clamp_min(-1e4).item(), "curves": curves}
