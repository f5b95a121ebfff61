"""Gradient masking, as a lesson: distillation, FGSM-AT, Grad Reg (y) and PGD-AT under FGSM, PGD, Square and FGSM
transferred from the plain model, their exactly-zero gradients and the masking checks (PAPER.md §8)."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import masking, zoo_views
from gradreg.viz import lesson_figures

COLUMNS = {"fgsm": "white-box FGSM", "pgd": "PGD", "square": "Square (gradient-free)", "transfer": "FGSM from plain"}

ui.routed()
ui.share("masking.")
st.title("Gradient masking, as a lesson")
manifest = ui.zoo()
ui.usable_models_or_stop()
ids, missing = zoo_views.role_ids(manifest, masking.MASKING_ROLES)
plain = zoo_views.role_ids(manifest, ("plain",))[0]
if missing:
    st.info(f"This zoo has no {', '.join(map(ui.label, missing))} model: the lesson compares the others.")
dataset = ui.common_dataset(ids + plain)
if not ids or dataset is None:
    st.info("The lesson needs zoo models in the roles distill, fgsm_at, grad_y or pgd_at (one dataset).")
    st.stop()
st.markdown("A defence can look robust because an attack cannot *use* its gradient, not because no nearby "
            "adversarial example exists. PGD beats FGSM on every model by a few points; the tell-tale signs are a "
            "*large* gap (FGSM far above PGD, or the gradient-free Square attack beating both), another model's "
            "gradient beating the model's own, and many input gradients that are exactly zero.")
budget = {"masking.n": 32, "masking.steps": 20, "masking.queries": 100}  # cheap by default: raise them here
if ui.advanced():  # teacher mode: the link's values (or these defaults), no controls
    left, middle, right = st.columns(3)
    left.number_input("Test images (the first N)", 16, 256, budget["masking.n"], step=16, key="masking.n")
    middle.number_input("PGD steps", 5, 100, budget["masking.steps"], step=5, key="masking.steps")
    right.number_input("Square queries", 50, 2000, budget["masking.queries"], step=50, key="masking.queries")
n, steps, queries = (int(st.session_state.get(key, value)) for key, value in budget.items())
ui.within_limits(images=n, attack_steps=steps, queries=queries)
names = {cid: ui.short_name(cid) for cid in ids}
roles = {names[cid]: role for cid, role in zoo_views.zoo_roles(manifest).items() if cid in names}


def lesson() -> None:  # no fragment: a Cancel click inside one would not interrupt the run (gradreg.ui.bounded)
    eps = float(st.select_slider("ε (L∞ radius)", (0.05, 0.1, 0.15, 0.2, 0.25, 0.3), value=0.2, key="masking.eps"))
    with ui.failures("The masking checks", stop=True):
        results, _ = ui.masking_results(ids, plain[0] if plain else None, dataset, n, eps, steps, queries)
    if not results:
        st.stop()
    rows = [masking.lesson_row(name, records, eps) for name, records in results.items()]
    st.plotly_chart(lesson_figures.masking_bars(rows, labels=COLUMNS), width="stretch", key="masking.bars")
    table = [{"model": r["model"], **{COLUMNS[c]: r[c] for c in COLUMNS},
              "zero-gradient images": r["zero_gradient_fraction"]} for r in rows]
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(table, hide_index=True, width="stretch", column_config={k: percent for k in table[0] if k != "model"})
    has_distill = "distill" in roles.values()
    st.subheader(masking.story_heading(rows, roles))
    if not has_distill:
        st.caption("Without a distilled model the lesson's main character is missing; the other defences still "
                   "show which attack is strongest on each.")
    for sentence in masking.masking_story(rows, eps=eps, roles=roles, labels=COLUMNS):
        st.markdown(f"- {sentence}")
    st.subheader("Masking checks")
    marks = {"pass": "pass", "fail": "FAIL", "skipped": "skipped"}  # emoji do not render in every canvas font
    st.dataframe([{"model": r["model"], **{c: marks[v] for c, v in r["verdicts"].items()}} for r in rows],
                 hide_index=True, width="stretch", key="masking.verdicts")
    with st.expander("What each check measured"):
        st.dataframe(masking.verdict_records(results), hide_index=True, width="stretch", key="masking.details")
    source = ui.short_name(plain[0]) if plain else "—"
    st.caption("fail = masking suspected (Athalye et al. 2018; Carlini et al. 2019). large_eps runs PGD at ε = 0.5 "
               f"and expects ≤ 10 % accuracy; single_step_illusion fails when FGSM leaves over 30 points more than "
               f"PGD at ε = {eps:g}; transfer uses FGSM crafted on {source}.")
    st.subheader("The same defences under the strongest attack we have")
    if not ui.strong_attack_table(dataset, {role: name for name, role in roles.items()}, key="masking.strong"):
        st.caption("The report has no strong-attack table for this zoo yet (`python -m gradreg robustness`).")


lesson()
