"""Home: the paper's idea and claims, what regularized input gradients look like, the models, where to go next."""

import streamlit as st

from gradreg import ui
from gradreg.ui import presets

ui.routed()
ui.share()
st.title("gradreg: regularizing input gradients")
st.markdown(
    """
Ross & Doshi-Velez (AAAI 2018, [arXiv 1711.09404](https://arxiv.org/abs/1711.09404)) train classifiers with an
extra penalty on the **input gradient** of the loss, λ · mean‖∇ₓ CE‖² ("double backpropagation"). They claim:

- the regularized models keep their clean accuracy;
- they resist small adversarial perturbations (FGSM, TGSM, JSMA) better than plain models, and examples crafted on
  them transfer to other models;
- their input gradients are smooth and follow the digit's strokes, where a plain model's look like noise;
- they are less over-confident than plain models.

λ here is always **λ_eff**, the weight on the per-example mean (the authors' TensorFlow λ ÷ 512). Single-step
white-box numbers flatter gradient-masked models (distillation, FGSM training): the Attack lab has PGD, transfer
and a gradient-free attack to check.
"""
)
manifest = ui.zoo()
pair = ui.showcase_pair(manifest)
st.subheader("Plain vs regularized input gradients")
if pair is None:
    st.info(f"No pretrained zoo with a plain and a Grad Reg (y) model in `{ui.zoo_dir()}`; build it with "
            "`python -m gradreg zoo` to see the comparison.")
else:
    with ui.failures("Drawing the comparison"):
        dataset = manifest["dataset"]
        digits = tuple(indices[0] for indices in ui.gallery(dataset).values())[:6]
        st.plotly_chart(ui.showcase_figure(ui.signature(), dataset, digits), width="stretch", key="home.maps")
        st.caption(f"∇ₓ log p of the predicted class for the same test digits: `{pair[0]['name']}` (no penalty) "
                   f"vs `{pair[1]['name']}` (λ_eff = {pair[1]['config']['lam']:g}). Red raises the class score, "
                   "blue lowers it; each map on its own colour scale, so the plain model's tiny gradients stay "
                   "visible.")
usable = ui.usable_models()
st.subheader(f"Models available: {len(usable)}")
if usable:
    ui.show_models(usable, height=min(38 + 35 * len(usable), 320))
else:
    st.info("No trained models yet: build the zoo (`python -m gradreg zoo`) or train one on the Train page.")
st.subheader("Where next")
left, right = st.columns(2)
left.page_link("pages/lambda_explorer.py", label="λ explorer: one slider, every metric", icon=":material/tune:")
left.page_link("pages/attack_lab.py", label="Attack lab: attack one digit on several models", icon=":material/bolt:")
left.page_link("pages/saliency_compare.py", label="Saliency compare: methods × models", icon=":material/grid_view:")
if ui.advanced():  # teacher mode has no Train page
    right.page_link("pages/train.py", label="Train your own model", icon=":material/model_training:")
right.page_link("pages/models.py", label="All models and datasets", icon=":material/inventory_2:")
st.subheader("Lessons: prepared views")
st.caption("Each link opens a page with its settings in the address bar: share it, or lock it for a class from the "
           "sidebar.")
columns = st.columns(2)
for i, preset in enumerate(presets.PRESETS):
    columns[i % 2].page_link(f"pages/{preset.page}.py", label=preset.title, icon=":material/school:",
                             query_params=preset.params)
    columns[i % 2].caption(preset.lesson)
