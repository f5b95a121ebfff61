"""REPORT.md's sections built from the JSON files other commands write beside it: the recipe ablation
(``python -m gradreg ablate`` → ``ablation.json``) and the strong-attack table with its sanity checks
(``python -m gradreg robustness`` → ``robustness.json``). The sections built from a reproduction's own records live
in ``gradreg.paper.report_sections``."""

from __future__ import annotations

from gradreg.paper.claims import LABELS
from gradreg.paper.report_sections import fmt_pct, md_table


def ablation_section(saved: dict) -> str:
    """The recipe ablation (``python -m gradreg ablate``), when ``reports/<dataset>/ablation.json`` exists: the short
    runs, then the longer runs it scored (``--score``)."""
    from gradreg.paper.ablation import long_table, table

    if not saved.get("records"):
        return ("## Recipe ablation\n\nNot run for this dataset (`python -m gradreg ablate --dataset …` writes "
                "`ablation.json` beside this report).")
    when = ", ".join(f"{k} {v}" for k, v in saved.get("schedule", {}).items())
    text = ("## Recipe ablation (`python -m gradreg ablate`; GR(y) and each network's plain twin on the short CPU "
            f"schedule: {when}; clean on the full test split, FGSM on the first 1000 test images)\n\n"
            + table(saved["records"]))
    if saved.get("long_runs"):
        text += ("\n\n### Longer runs (`python -m gradreg ablate --score DIR`; these checkpoints are not shipped, "
                 "their configs retrain them)\n\n" + long_table(saved["long_runs"]))
    return text


def robustness_section(saved: dict) -> str:
    """The strong-attack table (``python -m gradreg robustness``) and its sanity checks, when
    ``reports/<dataset>/robustness.json`` exists."""
    records, meta = saved.get("records") or [], saved.get("meta", {})
    if not records:
        return ("## Robustness under a strong ensemble\n\nNot run for this dataset (`python -m gradreg robustness` "
                "writes `robustness.json` beside this report).")
    rows = [[LABELS.get(r["model"], r["model"]), f"{r['eps']:g}", fmt_pct(r["clean"]), fmt_pct(r["fgsm"]),
             fmt_pct(r["pgd"]),
             fmt_pct(r["apgd_ce"]), fmt_pct(r["apgd_t"]), f"**{fmt_pct(r['ensemble'])}**",
             f"{r['seconds_fgsm']:.0f} / {r['seconds_pgd']:.0f} / {r['seconds_ensemble']:.0f}"] for r in records]
    e = meta.get("ensemble", {})
    head = (f"## Robustness under a strong ensemble (first {meta.get('n')} test images, accuracy %; "
            f"`python -m gradreg robustness`, {meta.get('seconds', 0) / 60:.0f} min on {meta.get('device')} with "
            f"{meta.get('threads')} thread(s))\n\n"
            f"PGD: {meta.get('pgd_steps')} steps of 2.5·ε/40 from {meta.get('restarts')} random starts (an image counts "
            f"as broken when any start breaks it). Ensemble, AutoAttack's standard L∞ order (Croce & Hein 2020): "
            f"APGD-CE ({e.get('steps')} steps), then APGD-T (DLR loss, top {e.get('targets')} target classes), then "
            f"Square ({e.get('queries')} queries), each on the images still classified correctly; the columns are "
            "cumulative and the ensemble's is the last. Seconds: FGSM / PGD / ensemble.\n\n")
    return (head + md_table(["model", "ε", "clean", "FGSM", f"PGD-{meta.get('pgd_steps')}", "APGD-CE", "+ APGD-T",
                           "ensemble", "s"], rows) + "\n\n" + _robustness_checks(records))


def _robustness_checks(records: list[dict], tolerance: float = 0.01) -> str:
    """Attack sanity checks on the table (Carlini et al. 2019, arXiv 1902.06705), each with a verdict."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        by_model.setdefault(r["model"], []).append(r)
    weaker = [f"{LABELS.get(r['model'], r['model'])} ε {r['eps']:g}" for r in records
              if r["ensemble"] > r["pgd"] + tolerance]
    rising = [LABELS.get(m, m) for m, rs in by_model.items()
              if any(b["ensemble"] > a["ensemble"] + tolerance for a, b in zip(rs, rs[1:]))]
    illusions = [f"{LABELS.get(r['model'], r['model'])} ε {r['eps']:g} (FGSM {fmt_pct(r['fgsm'])} %, ensemble "
                 f"{fmt_pct(r['ensemble'])} %)" for r in records if r["fgsm"] - r["ensemble"] > 0.3]
    lines = ["| check | verdict | where |", "|---|---|---|",
             f"| the ensemble is at least as strong as PGD (within {100 * tolerance:.0f} point) | "
             f"{'fail' if weaker else 'pass'} | {', '.join(weaker) or '–'} |",
             f"| ensemble accuracy never rises with ε | {'fail' if rising else 'pass'} | {', '.join(rising) or '–'} |",
             f"| single-step illusion: FGSM more than 30 points above the ensemble | "
             f"{'found' if illusions else 'none'} | {', '.join(illusions) or '–'} |"]
    return "Sanity checks on this table:\n\n" + "\n".join(lines)
