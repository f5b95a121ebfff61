"""gradreg dashboard: router and shared frame (`streamlit run app.py`)."""

import streamlit as st

from gradreg import ui

st.set_page_config(page_title="gradreg", page_icon="∇", layout="wide")
ui.use_threads()

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/lambda_explorer.py", title="λ explorer", icon=":material/tune:"),
    st.Page("pages/attack_lab.py", title="Attack lab", icon=":material/bolt:"),
    st.Page("pages/saliency_compare.py", title="Saliency compare", icon=":material/grid_view:"),
    st.Page("pages/draw.py", title="Draw a digit", icon=":material/draw:"),
    st.Page("pages/quiz.py", title="Quiz", icon=":material/quiz:"),
    st.Page("pages/story.py", title="The paper's story", icon=":material/auto_stories:"),
    st.Page("pages/transfer.py", title="Transfer matrix", icon=":material/swap_horiz:"),
    st.Page("pages/masking.py", title="Gradient masking", icon=":material/visibility_off:"),
    st.Page("pages/morphs.py", title="Morphs", icon=":material/transform:"),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/stacked_line_chart:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models & data", icon=":material/inventory_2:"),
]
if not ui.advanced():  # teacher mode (?teacher=1): a class does not start training runs on the shared server
    pages = [p for p in pages if p.url_path != "train"]
page = st.navigation(pages, position="hidden")  # routing only; the links: see ui.sidebar_navigation
ui.sidebar_navigation(pages)
ui.sidebar_status()
ui.teaching_box()
ui.enter_page(page)
try:
    page.run()
finally:  # also after st.stop() or st.rerun()
    ui.warm_start()  # the first run of a process loads, in the background, what the other pages need
ui.sync_url(final=True)  # the page's shared selections into its URL (see ui.share); not after st.stop()
