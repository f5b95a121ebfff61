"""Train: a form that builds a TrainConfig; the run goes on in the background with live curves and a Stop button."""

import streamlit as st

from gradreg import ui

ui.routed()
ui.share()  # the form stays out of the URL: a link shows a view, it never pre-fills a training run
st.title("Train a model")
st.markdown("The time a run takes is estimated by timing a few of its training steps on this machine; settings "
            "that would take longer than the server's limit are refused. An identical configuration "
            "loads the saved model instead of training again. The run continues if you leave this page; the saved "
            "model appears on every page as soon as it is written.")
config = ui.train_form()
if config is not None:
    st.info(ui.start_training(config))
ui.training_panel()
