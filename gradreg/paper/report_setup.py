"""The report's setup sections: the models (where and how each was trained), their seeds' spread, and every
deviation from the paper's protocol (PAPER.md §2–3).
"""

from __future__ import annotations

import math

from gradreg.core.config import TrainConfig
from gradreg.paper.claims import LABELS
from gradreg.paper.report_sections import PAPER_SCHEDULE, fmt_num, fmt_pct, md_table
from gradreg.paper.reproduce import Reproduction

DEVIATIONS = """- Model: `{model}`{model_note} (PAPER.md §2), trained with the {recipe} recipe ({recipe_fields}).
- Training: {schedule}; trained on {trained_on}.
- Weights are stored in half precision; every accuracy in this report is computed from the stored weights.
- λ: the compared Grad Reg (y) model is the zoo's `{grad_y}` entry (λ_eff convention of PAPER.md §1; the authors'
  MNIST choice is λ_eff ≈ 110).
- Attacks: the first N test images (N given per table); the paper used the first 256. Paper numbers are shown
  only for MNIST (they are the authors' MNIST results).
- The judge of the iterated-TGSM images is a model outside the compared five; its target-class rate is only an
  indicative stand-in for the paper's human study (PAPER.md §7)."""

def models_section(rep: Reproduction) -> str:
    zoo, roles = rep.meta["zoo"], rep.meta["roles"]
    rows = [[LABELS.get(role, role), f"`{name}`", zoo[name]["config"].get("model", "?"),
             TrainConfig.from_dict(zoo[name]["config"]).recipe, str(zoo[name]["config"].get("epochs")),
             str(zoo[name]["config"].get("n_train") or "all"), fmt_num(zoo[name]["train_seconds"], ".0f"),
             zoo[name].get("trained_on") or "?", zoo[name]["code_version"]] for role, name in roles.items()]
    return "## Models\n\n" + md_table(["role", "zoo entry", "network", "recipe", "epochs", "train images", "train s",
                                      "trained on", "code"], rows)


def deviations(rep: Reproduction) -> str:
    config = rep.meta["zoo"][rep.meta["roles"]["plain"]]["config"] if "plain" in rep.meta["roles"] else {}
    schedule = {k: config.get(k) for k in PAPER_SCHEDULE}
    same = schedule == PAPER_SCHEDULE
    text = (f"{schedule['epochs']} epoch(s) on {schedule['n_train'] or 'all 55 000'} training images, Adam lr "
            f"{schedule['lr']:g} ({schedule['lr_schedule']}), batch {schedule['batch_size']}")
    text += ": the paper's schedule" if same else ", instead of the paper's 70 epochs at lr 2e-4 (constant), batch 256"
    recipe = TrainConfig.from_dict(config).recipe if config else "?"
    fields = ", ".join(f"{k} {config.get(k)}" for k in ("init", "bn_scale", "adam_eps"))
    note = "" if config.get("model") == "paper_cnn" else (", the paper's layout with fewer units than its 3.3 M-parameter "
                                                           "CNN, chosen by the recipe ablation below")
    trained = sorted({v.get("trained_on") or "?" for v in rep.meta["zoo"].values()})
    missing = [LABELS[r] for r in ("plain", "distill", "fgsm_at", "grad_uniform", "grad_y", "pgd_at", "both")
               if r not in rep.meta["roles"]]
    extra = (f"\n- Not in this zoo: {', '.join(missing)} (the claims that need them are \"not tested\")."
             if missing else "")
    if rep.meta["dataset"] == "fashion_mnist":
        extra += ("\n- ε: the paper's MNIST grid. On Fashion-MNIST, whose classes differ in texture more than in "
                  "shape, ε 0.3 is a very large budget (robustness studies on it usually stop at 0.1–0.2), so "
                  "accuracies near zero at ε ≥ 0.3 say little about a defence.")
    return DEVIATIONS.format(model=config.get("model", "?"), model_note=note, recipe=recipe, recipe_fields=fields,
                             schedule=text, trained_on="; ".join(trained),
                             grad_y=rep.meta["roles"].get("grad_y", "none")) + extra


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return fmt_pct(values[0]) if values else "–"
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def seeds_section(rep: Reproduction) -> str:
    rows = rep.records.get("seeds") or []
    if not rows:
        return "## Seeds\n\nThe zoo holds one seed per model: no spread to report."
    keys = ["clean"] + [f"{k}_{e:g}" for k in ("fgsm", "pgd") for e in (0.1, 0.2, 0.3)] + ["transfer_fgsm_0.2"]
    table = []
    for role in dict.fromkeys(r["model"] for r in rows):
        members = [r for r in rows if r["model"] == role]
        table.append([LABELS.get(role, role), str(len(members))]
                     + [_mean_sd([r[k] for r in members if r.get(k) is not None]) for k in keys])
    return (f"## Seeds (mean ± sd over the zoo's seeds, %; clean on the full test split, attacks on the first "
            f"{rep.meta['zoo_n_eval']} test images, from the zoo's cards)\n\n"
            "The other tables show seed 0. Transferred FGSM is crafted on the seed-0 Normal model.\n\n"
            + md_table(["model", "seeds", *keys], table))
