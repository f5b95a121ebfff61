"""Transfer matrix: each source model crafts FGSM/TGSM/PGD examples, every model is scored on them (PAPER.md §5);
the authors' MNIST numbers sit beside ours where a cell matches theirs; a chosen cell shows the images it counts."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import transfer, zoo_views
from gradreg.viz import lesson_figures

EPSILONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
PGD_STEPS = 20  # half the attack's default: a 5-model matrix on 64 images then takes seconds on 2 cores

ui.routed()
ui.share("transfer.")
st.title("Transfer matrix")
manifest = ui.zoo()
usable = ui.usable_models_or_stop()
roles = zoo_views.zoo_roles(manifest)
default, missing = zoo_views.role_ids(manifest, transfer.PAPER_ROLES)
if missing:
    st.info(f"This zoo has no {', '.join(map(ui.label, missing))} model: the matrix uses the paper's models it has.")
ids = ui.model_picker("transfer", default=default or [m["id"] for m in usable[:3]],
                      label_text="Models (2–6): each one crafts examples and is scored on everyone's")
dataset = ui.common_dataset(ids)
if len(ids) < 2 or dataset is None:
    st.info("Pick two to six models trained on the same dataset.")
    st.stop()
n = int(st.number_input("Test images (the first N)", 16, 512, 64, step=16, key="transfer.n") if ui.advanced()
        else st.session_state.get("transfer.n", 64))  # teacher mode: the link's value, no control
ui.within_limits(images=n)
names = {cid: ui.short_name(cid) for cid in ids}


@ui.fragment
def panel() -> None:
    left, right = st.columns([2, 3])
    method = left.radio("Attack", transfer.TRANSFER_METHODS, format_func=ui.label, horizontal=True,
                        key="transfer.method")
    eps = float(right.select_slider("ε (L∞ radius)", EPSILONS, value=0.2, key="transfer.eps"))
    source_col, model_col = st.columns(2)
    source = source_col.selectbox("Crafted on (source)", ids, format_func=names.get, key="transfer.source")
    model = model_col.selectbox("Evaluated on", ids, index=1, format_func=names.get, key="transfer.evaluated")
    working = f"{ui.label(method)} from {len(ids)} sources at ε = {eps:g}…"
    with ui.failures("The transfer matrix"), st.spinner(working):
        params = (("steps", PGD_STEPS),) if method == "pgd" else ()
        records = ui.transfer_cells(tuple(ids), dataset, n, method, eps, params)
        paper = {(s, m): v for s in ids for m in ids if (v := transfer.paper_accuracy(
            roles.get(s), roles.get(m), method=method, eps=eps, dataset=dataset)) is not None}
        st.plotly_chart(lesson_figures.transfer_figure(records, names=names, paper=paper, selected=(source, model),
                                                    title=f"{ui.label(method)} accuracy at ε = {eps:g}"),
                        width="stretch", key="transfer.matrix")
        st.caption("Rows craft, columns are scored; the diagonal is the white-box attack. "
                   + (f"*Italic*: the authors' number for {len(paper)} cells (PAPER.md §6: FGSM crafted on Normal, "
                      "and their white-box FGSM table); their models trained 70 epochs on full MNIST, Grad Reg (y) "
                      "at λ_eff ≈ 110, so compare the shape, not the digits." if paper else
                      "The authors' numbers (PAPER.md §6) exist for MNIST FGSM cells of their five models at "
                      "ε 0.1–0.5 only.") + (f" PGD: {PGD_STEPS} steps, random start." if method == "pgd" else ""))
        cell = ui.cell_examples(source, model, dataset, n, method, eps, params)
        st.markdown(f"**{names[source]} → {names[model]}**: {names[model]} is right on {cell['accuracy']:.0%} of "
                    f"{cell['n']} crafted images; {cell['n_fooled']} fool it and the two models disagree on "
                    f"{cell['n_disagree']}. First the fooling ones, then the disagreements (column title: label → "
                    f"{names[model]}'s answer).")
        st.plotly_chart(lesson_figures.cell_figure(cell), width="stretch", key="transfer.examples")
        st.caption("δ = crafted − clean: red brightens a pixel, blue darkens it.")


panel()
