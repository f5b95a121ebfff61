"""Morphs: the paper's iterated-TGSM grid (original class × target class) per model, read by an independent judge
model, whose target-class rate stands in for the paper's human study (PAPER.md §7)."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import morphs, zoo_views
from gradreg.viz import lesson_figures

ui.routed()
ui.share("morphs.")
st.title("Morphs")
st.markdown("Iterated TGSM pushes the first test image of each class toward every class, with no ε-ball. The paper "
            "saw digits *turn into* the target on regularized models, and noise on plain ones. A separate **judge** "
            "model reads each image, our stand-in for the paper's human study. Its target rate measures *transfer* "
            "too: noise crafted on a plain model can fool another network without looking like the target, so "
            "compare rates between models under the same judge (and try another judge) rather than reading one "
            "rate as “looks like the target”.")
manifest = ui.zoo()
usable = ui.usable_models_or_stop()
default, missing = zoo_views.role_ids(manifest, ("plain", "grad_y", "fgsm_at", "distill"))
if missing:
    st.info(f"This zoo has no {', '.join(map(ui.label, missing))} model: pick from the models it has.")
ids = ui.model_picker("morphs", default=default or [m["id"] for m in usable[:2]], max_selections=4,
                      label_text="Models (1–4)")
dataset = ui.common_dataset(ids)
if not ids or dataset is None:
    st.info("Pick one to four models trained on the same dataset.")
    st.stop()
candidates = [m["id"] for m in ui.usable_models(dataset)]
judge_default = zoo_views.judge_id(manifest)
judge_default = judge_default if judge_default in candidates else next((c for c in candidates if c not in ids),
                                                                     candidates[0])
classes = ui.gallery(dataset)
firsts = tuple(classes[k][0] for k in sorted(classes))  # the first test image of each class, as in the paper


def lesson() -> None:  # no fragment: a Cancel click inside one would not interrupt the run (gradreg.ui.bounded)
    left, middle, right, last = st.columns([3, 2, 2, 2])
    judge = left.selectbox("Judge model", candidates, index=candidates.index(judge_default),
                           format_func=ui.short_name, key="morphs.judge")
    steps = int(middle.slider("TGSM steps", 1, 20, 10, key="morphs.steps"))
    step = float(right.select_slider("Step size per step", (0.02, 0.05, 0.1, 0.2), value=0.1, key="morphs.eps"))
    n = int(last.number_input("Images for the rates", 16, 512, 64, step=16, key="morphs.n") if ui.advanced()
            else st.session_state.get("morphs.n", 64))  # teacher mode: the link's value, no control
    ui.within_limits(images=n, attack_steps=steps)
    if judge in ids:
        st.warning(f"{ui.short_name(judge)} judges its own images: the rate is not independent.")
    with ui.failures("The iterated-TGSM grids", stop=True):
        grids, rates = ui.morph_results(ids, judge, dataset, firsts, n, steps, step)[:2]
    rows = [morphs.morph_row(name, grids[name], rates[name]) for name in grids if name in rates]
    if not rows:
        st.stop()
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={k: percent for k in rows[0] if k.startswith(("grid", "images:"))})
    st.caption(f"Grid: the {len(firsts) * (len(firsts) - 1)} off-diagonal cells. Images: the first {n} test images "
               f"pushed toward (y + 1) mod K by {steps} steps of {step:g}. The judge is {ui.short_name(judge)}.")
    if all(r["images: judge says target"] >= 0.95 for r in rows):
        st.info(f"Every model's images read as the target to the judge after {steps} steps: the attack saturates. "
                "Fewer steps (e.g. 5) separate models whose gradients morph digits from those that add noise.")
    columns = st.columns(2)
    for i, (name, result) in enumerate(grids.items()):
        title = f"{name}: judge reads the target in {result['judge_target_rate']:.0%} of the cells"
        columns[i % 2].plotly_chart(lesson_figures.morph_figure(result, title=title), width="stretch",
                                    key=f"morphs.grid.{name}")
    st.caption("Corner digit: the judge's reading of each cell, green when it is the target class.")


lesson()
