"""Saliency compare: methods × models on chosen digits, the saliency metrics, and the randomization sanity check."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import zoo_views
from gradreg.viz import page_figures

ui.routed()
ui.share("saliency.")
st.title("Saliency compare")
manifest = ui.zoo()
usable = ui.usable_models_or_stop()
default = zoo_views.lineup(manifest, count=3) if manifest else [m["id"] for m in usable[:2]]
ids = ui.model_picker("saliency", default=default, max_selections=4, label_text="Models (1–4)")
dataset = ui.common_dataset(ids)
if dataset is None:
    st.info("Pick one to four models trained on the same dataset.")
    st.stop()
methods = ["input_gradient", "integrated_gradients", "smoothgrad", "guided_backprop", "gradcam"]
if ui.advanced():  # the default through the state: a link's methods are set there too (no default-vs-state warning)
    st.session_state.setdefault("saliency.methods", methods)
    methods = st.multiselect("Methods", ui.saliency_methods(), format_func=ui.label, key="saliency.methods")
else:  # teacher mode: the link's methods, no list to pick from
    methods = st.session_state.get("saliency.methods", methods)
    st.caption(f"Methods: {', '.join(map(ui.label, methods))}")
with ui.failures("Loading the test images", stop=True):
    digits = ui.digits_picker("saliency", dataset, default_classes=(0, 3, 7))
shared = st.toggle("One colour scale per method across models", value=True, key="saliency.shared")
if methods and digits:
    with ui.failures("Computing the maps"):
        for index, figure in zip(digits, ui.compare_figures(ids, methods, dataset, digits, shared_scale=shared)):
            st.plotly_chart(figure, width="stretch", key=f"saliency.grid.{index}")
    st.caption("Signed maps for the predicted class: red raises it, blue lowers it. Hover for raw values.")
else:
    st.info("Pick at least one method and one digit.")

st.subheader("Metrics")
left, right = st.columns([1, 3], vertical_alignment="bottom")
n = left.number_input("Test images (the first N)", 8, 256, 16, step=8, key="saliency.n")
if methods and right.toggle("Compute the metrics table", value=False, key="saliency.metrics"):
    with ui.failures("Computing the metrics"):
        rows, _ = ui.metrics_table(ids, methods, dataset, int(n))
        if rows:
            st.dataframe(rows, width="stretch", hide_index=True)
    st.caption(f"Means over the first {int(n)} test images (the λ explorer's gradient norm is the cards' mean over "
               f"the zoo's first {(ui.zoo() or {}).get('n_eval', '?')}: a different set, so a different number). "
               "Lower total variation = smoother; stroke mass vs stroke fraction = how much "
               "attribution sits on the digit; deletion AUC lower and insertion AUC higher = more faithful; "
               "randomization similarity lower = the map depends on the learned weights (Adebayo et al. 2018).")

st.subheader("Randomization sanity check")
method = st.selectbox("Method", methods or ui.saliency_methods(), format_func=ui.label, key="saliency.random")
if digits:
    with ui.failures("The randomization check"):
        st.plotly_chart(page_figures.randomization_curves(ui.randomization_table(ids, dataset, digits, method)),
                        width="stretch", key="saliency.randomization")
    st.caption("Layers are re-initialized from the output down; a sound method's maps should decorrelate quickly. "
               "Methods that multiply by the input (input × gradient, integrated gradients) keep MNIST's zero "
               "background whatever the weights, so their rank similarity stays high for every model: for them "
               "this check cannot tell a model's maps apart.")
