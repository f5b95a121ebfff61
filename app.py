"""gradreg dashboard: router and shared frame (`streamlit run app.py`)."""

import streamlit as st

st.set_page_config(page_title="gradreg", page_icon="∇", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models & data", icon=":material/inventory_2:"),
]
st.navigation(pages).run()
