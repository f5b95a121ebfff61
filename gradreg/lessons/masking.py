"""Data for the dashboard's gradient-masking lesson: a table row per model, the verdicts, and the facts of its
narrative, every number read from ``masking.masking_checks`` records (checks after Athalye et al. 2018,
arXiv 1802.00420; the defences of Ross & Doshi-Velez 2018, arXiv 1711.09404, PAPER.md §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MASKING_ROLES = ("distill", "fgsm_at", "grad_y", "pgd_at")  # the masked pair, then the two honest defences
ATTACK_COLUMNS = ("fgsm", "pgd", "square", "transfer")


def lesson_row(name: str, checks: Sequence[Mapping], eps: float) -> dict:
    """One model's row of the masking lesson from its ``masking.masking_checks`` records at ``eps``.

    Returns:
        ``{"model", "fgsm", "pgd", "square", "transfer" (None when skipped), "zero_gradient_fraction",
        "verdicts": {check: verdict}}``, accuracies in [0, 1].
    """
    by_check = {c["check"]: c for c in checks}
    missing = {"iterative_vs_single_step", "gradient_free_vs_gradient", "white_box_vs_transfer",
               "zero_gradients"} - set(by_check)
    if missing:
        raise ValueError(f"masking checks lack {sorted(missing)}; pass masking_checks(...) records")
    iterative = by_check["iterative_vs_single_step"]["numbers"]
    if eps not in iterative:
        raise ValueError(f"no masking numbers at ε = {eps}; available: {sorted(iterative)}")
    transfer = by_check["white_box_vs_transfer"]["numbers"].get(eps, {})
    return {"model": name, "fgsm": iterative[eps]["fgsm"], "pgd": iterative[eps]["pgd"],
            "square": by_check["gradient_free_vs_gradient"]["numbers"][eps]["square"],
            "transfer": transfer.get("transfer_fgsm"),
            "zero_gradient_fraction": by_check["zero_gradients"]["numbers"]["zero_example_fraction"],
            "verdicts": {c["check"]: c["verdict"] for c in checks if c["verdict"] != "info"}}


def verdict_records(checks_by_model: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """``[{"model", "check", "verdict", "detail"}]`` for every non-statistics check of every model."""
    return [{"model": name, "check": c["check"], "verdict": c["verdict"], "detail": c["detail"]}
            for name, checks in checks_by_model.items() for c in checks if c["verdict"] != "info"]


def _worst(row: Mapping) -> tuple[str, float]:
    """The strongest attack on a row: (column, accuracy)."""
    column = min((c for c in ATTACK_COLUMNS if row.get(c) is not None), key=lambda c: row[c])
    return column, row[column]


def _distill_sentence(row: Mapping, best: bool, labels: Mapping[str, str]) -> str:
    attack, value = _worst(row)
    flagged = [c for c, v in row["verdicts"].items() if v == "fail"]
    others = f"PGD {row['pgd']:.0%}, Square {row['square']:.0%}" + (
        f", FGSM from plain {row['transfer']:.0%}" if row["transfer"] is not None else "")
    text = f"Distillation keeps {row['fgsm']:.0%} under FGSM" + (", the best score here," if best else "")
    if attack == "fgsm":
        text += f" and FGSM is also its strongest attack here ({others}): no sign of masking at this ε."
    else:
        text += f" but {labels.get(attack, attack)} leaves {value:.0%} ({others})."
    zero = row["zero_gradient_fraction"]
    if zero > 0:
        text += (f" {zero:.0%} of its test images have an exactly-zero input gradient: sign(0) = 0, so FGSM does "
                 "not move them (gradient underflow), while attacks that do not rely on its own gradient get through.")
    else:
        text += " None of its test images has an exactly-zero input gradient."
    return text + (f" Failed masking checks: {', '.join(flagged)}." if flagged else " No masking check fails.")


def _defence_sentence(row: Mapping, labels: Mapping[str, str], gap: float = 0.2) -> str:
    attack, value = _worst(row)
    text = (f"**{row['model']}**: FGSM {row['fgsm']:.0%}, PGD {row['pgd']:.0%}, Square {row['square']:.0%}; "
            f"its strongest attack is {labels.get(attack, attack)} ({value:.0%}).")
    if row["pgd"] < row["fgsm"] - gap:
        text += (f" PGD is {(row['fgsm'] - row['pgd']) * 100:.0f} points below FGSM: FGSM overstates this "
                 "model's robustness.")
    if row["transfer"] is not None:
        fair = row["fgsm"] <= row["transfer"]
        text += (f" White-box FGSM {'≤' if fair else '>'} FGSM transferred from plain ({row['transfer']:.0%}): "
                 + ("its own gradient is the better guide, as it should be." if fair else
                    "another model's gradient attacks it better than its own, the masking signature."))
    return text


def story_heading(rows: Sequence[Mapping], roles: Mapping[str, str]) -> str:
    """The narrative's heading, named after whoever resists white-box FGSM best (the lesson's main character when
    it is the distilled model)."""
    if not rows:
        return "What the numbers say"
    best = max(rows, key=lambda r: r["fgsm"])
    role = roles.get(best["model"])
    if role == "distill":
        return "Why distillation “wins” FGSM"
    if role in ("fgsm_at", "grad_y", "pgd_at") and _worst(best)[0] != "fgsm":
        return f"Why {best['model']} “wins” FGSM, and what the other attacks say"
    return "What the numbers say"


def masking_story(rows: Sequence[Mapping], *, eps: float, roles: Mapping[str, str],
                  labels: Mapping[str, str]) -> list[str]:
    """The lesson's narrative as Markdown sentences, every number read from ``rows`` (``lesson_row`` records).

    Args:
        roles: row "model" → paper role (distill, fgsm_at, grad_y, pgd_at); labels: attack column → label.
    """
    if not rows:
        return []
    by_role = {roles.get(r["model"]): r for r in rows}
    best = max(rows, key=lambda r: r["fgsm"])
    story = [f"At ε = {eps:g}, white-box FGSM is resisted best by **{best['model']}** ({best['fgsm']:.0%})."]
    if "distill" in by_role:
        story.append(_distill_sentence(by_role["distill"], by_role["distill"] is best, labels))
    for role in ("fgsm_at", "grad_y", "pgd_at"):
        row = by_role.get(role)
        if row is None:
            continue
        story.append(_defence_sentence(row, labels))
    return story
