"""FGSM and PGD images per second against ``captum.robust`` with the same model, images, ε and steps; APGD against
gradreg's own PGD with the same budget.

FGSM and PGD run the same L∞ arithmetic as Captum's (PGD with a random start and step 2.5·ε/steps, Madry et al.
2018), with Captum given cross-entropy on the logits as its loss, so both compute the same attack; the ratio is
gradreg's images per second over the peer's (≥ 1: gradreg is faster). APGD (Croce & Hein 2020, arXiv 2003.01690)
makes steps + 1 gradient evaluations per image, PGD steps, but APGD stops on each image once it is misclassified.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import torch
from torch import nn

from benchmarks.report import row
from benchmarks.timing import interleaved, median
from gradreg.attacks.apgd import apgd
from gradreg.attacks import fgsm, pgd

EPS = 0.3
TARGET = 1.2
APGD_TARGET = 1.0  # no slower than PGD with the same number of steps


def _cases(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, pgd_steps: int,
           apgd_steps: int) -> dict[str, Callable[[], object]]:
    step = 2.5 * EPS / pgd_steps
    cases = {"fgsm": lambda: fgsm(model, x, y, eps=EPS),
             "pgd": lambda: pgd(model, x, y, eps=EPS, steps=pgd_steps, step_size=step, seed=0),
             "apgd": lambda: apgd(model, x, y, eps=EPS, steps=apgd_steps, seed=0),
             "pgd for apgd": lambda: pgd(model, x, y, eps=EPS, steps=apgd_steps, seed=0)}
    if importlib.util.find_spec("captum") is not None:
        from captum.robust import FGSM, PGD

        loss = nn.CrossEntropyLoss(reduction="none")  # Captum's default, −log of the outputs, assumes probabilities
        captum_fgsm = FGSM(model, loss_func=loss, lower_bound=0.0, upper_bound=1.0)
        captum_pgd = PGD(model, loss_func=loss, lower_bound=0.0, upper_bound=1.0)
        inputs = x.clone().requires_grad_(True)  # Captum sets this flag itself (with a warning) otherwise
        cases["captum fgsm"] = lambda: captum_fgsm.perturb(inputs, EPS, target=y)
        cases["captum pgd"] = lambda: captum_pgd.perturb(inputs, EPS, step, pgd_steps, target=y, random_start=True)
    return cases


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, device: torch.device, pgd_steps: int,
            repeats: int, apgd_steps: int = 100) -> tuple[list, dict]:
    cases = _cases(model, x, y, pgd_steps=pgd_steps, apgd_steps=apgd_steps)
    have_captum = "captum pgd" in cases
    times = interleaved(cases, device=device, repeats=repeats)
    seconds = {name: median(t) for name, t in times.items()}
    rows = []
    for name, label in (("fgsm", "FGSM"), ("pgd", f"PGD-{pgd_steps}")):
        peer = seconds.get(f"captum {name}")
        ratio = None if peer is None else peer / seconds[name]
        rows.append(row("attacks", f"{label} images/s (batch {len(x)}, ε {EPS})", f"captum.robust {label}", ratio,
                        target=f"≥ {TARGET}×", met=None if ratio is None else ratio >= TARGET,
                        seconds=seconds[name], peer_seconds=peer,
                        note="" if have_captum else "captum not installed"))
    ratio = seconds["pgd for apgd"] / seconds["apgd"]
    rows.append(row("attacks", f"APGD-{apgd_steps} images/s (batch {len(x)}, ε {EPS})", f"gradreg PGD-{apgd_steps}",
                    ratio, target=f"≥ {APGD_TARGET}×", met=ratio >= APGD_TARGET, seconds=seconds["apgd"],
                    peer_seconds=seconds["pgd for apgd"], note="APGD stops on an image once it is misclassified"))
    return rows, {"batch_size": len(x), "eps": EPS, "pgd_steps": pgd_steps, "apgd_steps": apgd_steps,
                  "seconds": seconds, "all_seconds": times}
