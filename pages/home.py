"""Home: the paper's idea in a few lines and where to go next."""

import streamlit as st

from gradreg import ui

st.title("gradreg: regularizing input gradients")
st.markdown(
    """
Ross & Doshi-Velez (AAAI 2018, [arXiv 1711.09404](https://arxiv.org/abs/1711.09404)) train classifiers with an extra
penalty on the **input gradient** of the loss, λ · mean‖∇ₓ CE‖² ("double backpropagation"). The paper claims that
such models keep their accuracy, resist small adversarial perturbations better than plain models, and have input
gradients that look like the digit instead of noise.

λ here is always **λ_eff**, the weight on the per-example mean (the authors' TensorFlow λ ÷ 512).
"""
)
models = ui.list_models()
usable = [m for m in models if m["ok"]]
st.metric("Usable models", len(usable))
if not usable:
    st.info("No trained models yet. Train one with `python -m gradreg train --regularizer grad_y --lam 10`.")
st.page_link("pages/models.py", label="See the models and datasets", icon=":material/inventory_2:")
