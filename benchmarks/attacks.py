"""FGSM and PGD images per second, against ``captum.robust`` with the same model, images, ε and steps.

Both run the same L∞ arithmetic (PGD with a random start and step 2.5·ε/steps, Madry et al. 2018); the ratio is
gradreg's images per second over Captum's (≥ 1: gradreg is faster).
"""

from __future__ import annotations

import importlib.util

import torch

from benchmarks.report import row
from benchmarks.timing import interleaved, median
from gradreg.attacks import fgsm, pgd

EPS = 0.3
TARGET = 1.2


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, device: torch.device, pgd_steps: int,
            repeats: int) -> tuple[list, dict]:
    step = 2.5 * EPS / pgd_steps
    cases = {"fgsm": lambda: fgsm(model, x, y, eps=EPS),
             "pgd": lambda: pgd(model, x, y, eps=EPS, steps=pgd_steps, step_size=step, seed=0)}
    have_captum = importlib.util.find_spec("captum") is not None
    if have_captum:
        from captum.robust import FGSM, PGD

        captum_fgsm, captum_pgd = FGSM(model, lower_bound=0.0, upper_bound=1.0), PGD(model, lower_bound=0.0,
                                                                                     upper_bound=1.0)
        inputs = x.clone().requires_grad_(True)  # Captum sets this flag itself (with a warning) otherwise
        cases["captum fgsm"] = lambda: captum_fgsm.perturb(inputs, EPS, target=y)
        cases["captum pgd"] = lambda: captum_pgd.perturb(inputs, EPS, step, pgd_steps, target=y, random_start=True)
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
    return rows, {"batch_size": len(x), "eps": EPS, "pgd_steps": pgd_steps, "seconds": seconds, "all_seconds": times}
