"""Attack lab: one image attacked on 2–6 models side by side, then accuracy against ε on many test images."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import panels, zoo_views
from gradreg.viz import page_figures

ui.routed()
ui.share("attack.", "curves.")
st.title("Attack lab")
manifest = ui.zoo()
usable = ui.usable_models_or_stop()
default = zoo_views.lineup(manifest) if manifest else [m["id"] for m in usable[:2]]
ids = ui.model_picker("attack", default=default, label_text="Models to attack (2–6)")
dataset = ui.common_dataset(ids)
if len(ids) < 2:
    st.info("Pick at least two models to compare.")
    st.stop()
if dataset is None:
    st.error("The chosen models were trained on different datasets; pick models of one dataset.")
    st.stop()
with st.sidebar, ui.failures("Loading the test images", stop=True):  # opens on a digit plain loses, GR(y) keeps
    view = (ui.showcase_view(ui.signature(), panels.size_range("fgsm")[2])  # (digit, ε) of the lesson, or None
            if manifest is not None and manifest["dataset"] == dataset else None)
    index = ui.image_picker("attack", dataset, default=view[0] if view else None)


@ui.fragment
def lab() -> None:
    choice = ui.attack_controls("attack", eps=view[1] if view else None)
    for cid in ids:
        with ui.failures(f"Attacking {ui.short_name(cid)}"):
            panel = ui.attack_panel(cid, dataset, index, choice["method"], choice["size"], choice["target"],
                                    choice["params"], choice["saliency"])
            st.markdown(panels.attack_summary(ui.short_name(cid), panel))
            if note := panels.blank_note(panel, ui.short_name(cid)):
                st.caption(note)
            images, bars = st.columns([5, 2])
            images.plotly_chart(page_figures.attack_row(panel), width="stretch", key=f"attack.row.{cid}")
            bars.plotly_chart(page_figures.probability_pair(panel), width="stretch", key=f"attack.bars.{cid}")
    st.caption("Perturbation: red brightens a pixel, blue darkens it. Saliency, for the class predicted on that image: "
               "red raises it, blue lowers it.")


def curves() -> None:  # no fragment: a Cancel click inside one would not interrupt the run (gradreg.ui.bounded)
    st.subheader("Accuracy against ε")
    left, middle, right = st.columns(3)
    method = left.selectbox("Attack", ["fgsm", "pgd", "bim", "square", "apgd", "ensemble"], format_func=ui.label,
                            key="curves.method")
    n = (middle.number_input("Test images (the first N)", 16, 1000, 64, step=16, key="curves.n") if ui.advanced()
         else st.session_state.get("curves.n", 64))  # teacher mode: the link's value, no control
    top = right.select_slider("Largest ε (L∞)", [0.1, 0.2, 0.3, 0.4, 0.5], value=0.3, key="curves.top")
    full = st.toggle("Full strength (slow)", key="curves.full") if method in ("square", "ensemble") else False
    n, params, note = ui.curve_settings(method, int(n), full)
    epsilons = [round(top * i / 6, 4) for i in range(7)]
    with ui.failures("Computing the curves"):
        records, _ = ui.accuracy_curves(ids, dataset, n, method, epsilons, params)
        if records:
            st.plotly_chart(page_figures.accuracy_curves(records), width="stretch", key="curves.chart")
        st.caption(note or "Default knobs of each attack (PGD: 40 steps, random start; APGD: 100 steps). Every "
                   "point is cached, so adding a model computes only its curve.")


def illusion() -> None:
    roles = zoo_views.zoo_roles(manifest)
    chosen = {roles[cid]: ui.short_name(cid) for cid in ids if cid in roles}
    if chosen:
        st.subheader("Single-step numbers against the strong ensemble")
        if not ui.strong_attack_table(dataset, chosen, key="attack.strong"):
            st.caption("The report has no strong-attack table for this zoo yet (`python -m gradreg robustness`).")


lab()
curves()
illusion()
