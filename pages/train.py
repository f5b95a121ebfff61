"""Train: a form that builds a TrainConfig, live progress, the result saved and visible on every page."""

import streamlit as st

from gradreg import ui

st.title("Train a model")
st.markdown("Settings that would take longer than the server's limit are refused. An identical configuration "
            "loads the saved model instead of training again.")
config = ui.train_form()
if config is None:
    st.stop()
result = ui.run_training(config)
st.metric("Test accuracy", f"{result['test_accuracy']:.2%}")
st.caption(f"Checkpoint id: `{result['id']}` — it now appears on every page.")
