"""The sections of REPORT.md: each experiment's records as a markdown table beside the paper's numbers (what was
trained, its seeds and the deviations from the paper are ``report_setup``'s).

Reference numbers come from ``gradreg.paper.claims`` (PAPER.md §6–8); records from ``gradreg.paper.reproduce``.
"""

from __future__ import annotations

import math

from gradreg.paper.claims import LABELS, PAPER_CLEAN, PAPER_TRANSFER_FROM_NORMAL, PAPER_WHITE_FGSM, Missing, value
from gradreg.paper.reproduce import Reproduction

PAPER_SCHEDULE = {"epochs": 70, "n_train": None, "batch_size": 256, "lr": 2e-4, "lr_schedule": "constant"}


def fmt_pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def fmt_num(v: float | None, fmt: str = ".3g") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _get(records: dict, experiment: str, key: str = "accuracy", **match) -> float | None:
    try:
        return value(records, experiment, key, **match)
    except Missing:
        return None


def _roles(rep: Reproduction, experiment: str) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in rep.records.get(experiment, [])))


def _figure(status: dict[str, str], name: str, caption: str) -> str:
    file = status.get(name, "missing: not rendered")
    return f"![{caption}]({file})\n\n*{caption}*" if not file.startswith("missing") else \
        f"*Figure `{name}` is missing ({file[9:]}).*"


def claims_section(claims: list[dict]) -> str:
    rows = [[str(i), f"{c['statement']} ({c['source']})", c["criterion"], c["evidence"], f"**{c['verdict']}**"]
            for i, c in enumerate(claims, 1)]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in dict.fromkeys(c["verdict"] for c in claims)}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    return f"## Claims and verdicts\n\n{summary}.\n\n" + md_table(["#", "claim", "criterion", "we measured", "verdict"],
                                                                 rows)


def _paper(rep: Reproduction, numbers: dict) -> dict:
    """The authors' numbers when the report is on MNIST (their dataset), otherwise none."""
    return numbers if rep.meta["dataset"] == "mnist" else {}


def accuracy_section(rep: Reproduction) -> str:
    r, n = rep.records, rep.meta["settings"]["n_attack"]
    paper_clean, paper_white = _paper(rep, PAPER_CLEAN), _paper(rep, PAPER_WHITE_FGSM)
    clean = [[LABELS.get(m, m), f"`{_get(r, 'clean', 'entry', model=m)}`", fmt_pct(_get(r, "clean", model=m)),
              fmt_pct(paper_clean.get(m))] for m in _roles(rep, "clean")]
    eps = rep.meta["settings"]["white_box_eps"]
    white = []
    for m in _roles(rep, "white_box"):
        fgsm = " / ".join(fmt_pct(_get(r, "white_box", model=m, method="fgsm", eps=e)) for e in eps)
        tgsm = " / ".join(fmt_pct(_get(r, "white_box", model=m, method="tgsm", eps=e)) for e in eps)
        paper = " / ".join(fmt_pct(v) for v in paper_white[m]) if m in paper_white else "–"
        white.append([LABELS.get(m, m), fgsm, paper, tgsm])
    eps_text = " / ".join(f"{e:g}" for e in eps)
    return ("## Clean accuracy (full test split, %)\n\n" + md_table(["model", "zoo entry", "ours", "paper"], clean)
            + f"\n\n## White-box FGSM and TGSM (first {n} test images, accuracy %, ε = {eps_text})\n\n"
            + md_table(["model", "FGSM ours", "FGSM paper", "TGSM ours (target y+1)"], white))


def _transfer_rows(rep: Reproduction, source: str, method: str, paper: dict | None) -> str:
    receivers = [m for m in _roles(rep, "transfer")]
    rows = []
    for e in rep.meta["settings"]["epsilons"]:
        cells = []
        for m in receivers:
            ours = fmt_pct(_get(rep.records, "transfer", source=source, model=m, method=method, eps=e))
            ref = paper.get(round(e, 3), {}).get(m) if paper else None
            cells.append(ours + (f" ({fmt_pct(ref)})" if ref is not None else ""))
        rows.append([f"{e:g}"] + cells)
    return md_table(["ε"] + [LABELS.get(m, m) for m in receivers], rows)


def transfer_section(rep: Reproduction, status: dict[str, str]) -> str:
    n = rep.meta["settings"]["n_transfer"]
    parts = [f"## Transfer (first {n} test images, accuracy %; paper's number in parentheses)\n",
             "FGSM crafted on **Normal**, each model scored (Normal's column is white-box):\n",
             _transfer_rows(rep, "plain", "fgsm", _paper(rep, PAPER_TRANSFER_FROM_NORMAL)),
             "\nFGSM crafted on **GR(y)**:\n", _transfer_rows(rep, "grad_y", "fgsm", None),
             "\nTGSM (target y + 1) crafted on **Normal**:\n", _transfer_rows(rep, "plain", "tgsm", None),
             "", _figure(status, "white_box_fgsm", "white-box FGSM accuracy against ε"),
             _figure(status, "transfer_fgsm_from_plain", "FGSM crafted on Normal, accuracy of each model"),
             _figure(status, "transfer_tgsm_from_plain", "TGSM crafted on Normal, accuracy of each model"),
             _figure(status, "transfer_fgsm_eps0.3", "FGSM transfer matrix at ε = 0.3 (rows: crafted on)"),
             _figure(status, "transfer_tgsm_eps0.3", "TGSM transfer matrix at ε = 0.3 (rows: crafted on)")]
    return "\n".join(parts)


def targeted_section(rep: Reproduction, status: dict[str, str]) -> str:
    r, judge = rep.records, rep.meta["roles"].get("judge", "none")
    grid = {x["model"]: x for x in r.get("iterated_grid", [])}
    steps = sorted({x["steps"] for x in r.get("judge", [])})
    rows = [[LABELS.get(m, m)] + [" / ".join(fmt_pct(_get(r, "judge", key, model=m, steps=k)) for k in steps)
                                  for key in ("model_target_rate", "judge_target_rate", "judge_true_rate")]
            + [fmt_pct(grid.get(m, {}).get("judge_target_rate"))] for m in grid]
    jsma = [[LABELS.get(x["model"], x["model"]), fmt_pct(x["success_rate"]), fmt_num(x["mean_l0"], ".1f"),
             fmt_pct(x["mean_l0_fraction"]), str(x["n"])] for x in r.get("jsma", [])]
    return (f"## Iterated TGSM and the judge (`{judge}`, indicative only)\n\nSteps of 0.1, no ε-ball, target "
            f"y + 1, first {rep.meta['settings']['n_attack']} test images, after {' / '.join(map(str, steps))} steps "
            "(the paper's figures: 10); the last column is the judge on the 90 off-diagonal cells of the 10-step grid "
            "figure. The judge is itself a trained network, and examples transfer between networks: a high rate is "
            "necessary, not sufficient, for 'looks like the target'.\n\n"
            + md_table(["crafted on", "crafting model says target %", "judge says target %", "judge says original %",
                      "judge on grid %"], rows) + "\n\n"
            + _figure(status, "iterated_tgsm", "iterated-TGSM grids: rows = original digit, columns = target class")
            + "\n\n## JSMA (θ = +1, γ = 0.25, target y + 1; no paper numbers)\n\n"
            + md_table(["model", "success %", "mean L0 (pixels)", "mean L0 % of pixels", "images"], jsma))


def saliency_section(rep: Reproduction, status: dict[str, str]) -> str:
    keys = ("total_variation", "stroke_mass", "stroke_fraction", "alignment", "gini", "deletion_auc", "insertion_auc",
            "randomization_similarity")
    rows = [[LABELS.get(x["model"], x["model"])] + [fmt_num(x.get(k)) for k in keys] for x in rep.records["saliency"]]
    conf = [[LABELS.get(m, m), fmt_num(_get(rep.records, "confidence", "mean_logp", model=m, kind="predicted")),
             fmt_num(_get(rep.records, "confidence", "mean_logp", model=m, kind="other")),
             fmt_num(_get(rep.records, "confidence", "median_logp", model=m, kind="other"))]
            for m in _roles(rep, "confidence")]
    norms = [[LABELS.get(x["model"], x["model"])] + [fmt_num(x[k]) for k in ("q25", "median", "q75", "mean")]
             for x in rep.records["grad_norms"]]
    return ("## Input gradients ∇ₓ log p_y and their metrics "
            f"(first {rep.meta['settings']['n_saliency']} test images)\n\n"
            "TV = total variation / L1 (lower = smoother; ≈ 2.8 for noise); stroke mass vs stroke fraction (chance); "
            "randomization similarity: lower = map depends more on the weights (Adebayo et al. 2018). An exactly-zero "
            "map (gradient underflow) scores 0 on TV, stroke mass and alignment.\n\n"
            + md_table(["model", *keys], rows) + "\n\n" + _figure(status, "input_gradients", "∇ₓ log p_y for the true class; each panel on its own colour scale")
            + "\n\n## Confidence (log-probabilities at T = 1; paper: non-predicted ≈ −12 GR vs ≈ −27 Normal)\n\n"
            + md_table(["model", "mean log p predicted", "mean log p others", "median log p others"], conf) + "\n\n"
            + _figure(status, "confidence", "log-probability distributions (cumulative)") + "\n\n## Input-gradient norms ‖∇ₓ CE‖₂\n\n"
            + md_table(["model", "q25", "median", "q75", "mean"], norms) + "\n\n"
            + _figure(status, "gradient_norms", "input-gradient norm box plots"))


def masking_section(rep: Reproduction) -> str:
    s, r = rep.meta["settings"], rep.records
    eps = s["white_box_eps"]
    attacks = [[LABELS.get(m, m)] + [" / ".join(fmt_pct(_get(r, "attacks", model=m, method=k, eps=e)) for e in eps)
                                     for k in ("fgsm", "pgd", "square")] for m in _roles(rep, "attacks")]
    checks = list(dict.fromkeys(x["check"] for x in r["masking"] if x["verdict"] != "info"))
    verdicts = {(x["model"], x["check"]): x["verdict"] for x in r["masking"]}
    table = [[LABELS.get(m, m)] + [verdicts.get((m, c), "–") for c in checks] for m in _roles(rep, "masking")]
    fails = [f"- {LABELS.get(x['model'], x['model'])} · {x['check']}: {x['detail']}" for x in r["masking"]
             if x["verdict"] == "fail"]
    return (f"## White-box FGSM, PGD ({s['pgd_steps']} steps) and Square ({s['square_queries']} queries) "
            f"(first {s['n_masking']} test images, accuracy %, ε = {' / '.join(f'{e:g}' for e in eps)})\n\n"
            + md_table(["model", "FGSM", "PGD", "Square"], attacks)
            + "\n\n## Gradient-masking checks (fail = masking suspected; transfer source: Normal, for Normal the judge)"
            "\n\n" + md_table(["model", *checks], table) + "\n\n" + ("\n".join(fails) or "No check failed."))


def lambda_section(rep: Reproduction, status: dict[str, str]) -> str:
    keys = ("clean", "fgsm_0.1", "pgd_0.1", "transfer_fgsm_0.2", "grad_norm", "other_log_prob", "total_variation",
            "stroke_mass")
    rows = [[fmt_num(x["lam"])] + [fmt_num(x.get(k)) for k in keys] for x in sorted(rep.records["lambda"],
                                                                             key=lambda x: x["lam"])]
    return ("## Metrics against λ_eff (Grad Reg (y) grid; λ = 0 is Normal; accuracies as fractions, from the zoo cards "
            f"on the first {rep.meta['zoo_n_eval']} test images)\n\n"
            + md_table(["λ_eff", *keys], rows) + "\n\n" + _figure(status, "lambda_accuracy", "accuracy against λ_eff")
            + "\n\n" + _figure(status, "lambda_maps", "map metrics against λ_eff"))


def curve_section(rep: Reproduction, status: dict[str, str]) -> str:
    rows = rep.records.get("training_curve") or []
    if not rows:
        return "## Transferred-FGSM accuracy during training\n\nNot run: the zoo lacks a Normal or a GR(y) entry."
    s = rep.meta["settings"]
    epochs = sorted({x["epoch"] for x in rows})
    models = [m for m in ("plain", "grad_y") if any(x["model"] == m for x in rows)]
    table = [[str(e)] + [f"{fmt_pct(_get(rep.records, 'training_curve', 'transfer_fgsm', model=m, epoch=e))} / "
                         f"{fmt_pct(_get(rep.records, 'training_curve', 'clean', model=m, epoch=e))}" for m in models]
             for e in epochs]
    if "entry" in rows[0]:
        how = (f"Recorded while the zoo trained its replicas `{rows[0]['entry']}` and "
               f"`{next(x['entry'] for x in rows if x['model'] == 'grad_y')}` (the zoo's own schedule); after each "
               f"epoch, accuracy on FGSM examples crafted once on the zoo's Normal model, first 1000 test images")
    else:
        how = (f"Normal and GR(y) retrained from their zoo configs with seed {s['seed'] + 1} and a constant learning "
               f"rate for {s['curve_epochs']} epochs on {s['curve_n_train']} training images; after each epoch, "
               f"accuracy on FGSM examples crafted once on the zoo's Normal model, first {s['n_curve']} test images")
    return (f"## Transferred-FGSM accuracy during training (ε = {rows[0]['eps']:g})\n\n{how} (transferred / clean). "
            "The paper (PAPER.md §6): Normal's accuracy peaks early and declines, GR's does not.\n\n"
            + md_table(["epoch", *(f"{LABELS[m]} transferred / clean" for m in models)], table) + "\n\n"
            + _figure(status, "training_curve", "transferred-FGSM accuracy after each epoch"))
