"""Models & data: every checkpoint (usable or not, with the reason) and every dataset on this machine."""

import streamlit as st

from gradreg import ui

st.title("Models & data")
models = ui.list_models()
usable = [m for m in models if m["ok"]]
broken = [m for m in models if not m["ok"]]
st.subheader(f"Models ({len(usable)})")
if usable:
    st.dataframe(
        [{"model": ui.describe(m), "test accuracy": m["test_accuracy"], "epochs": m["epochs"],
          "dataset": m["dataset"], "complete": m["complete"], "id": m["id"]} for m in usable],
        width="stretch", hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="percent")},
    )
else:
    st.info("No trained models found. Train one with `python -m gradreg train`.")
for m in broken:
    st.warning(f"Unusable file `{m['path']}`: {m['reason']}")
st.subheader("Datasets")
st.dataframe(ui.datasets(), width="stretch", hide_index=True)
