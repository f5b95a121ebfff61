"""Models & data: every checkpoint (usable or not, with the reason) and every dataset on this machine."""

import streamlit as st

from gradreg import ui

ui.routed()
ui.share()  # nothing to select here: the URL stays clean
st.title("Models & data")
models = ui.list_models()
usable = [m for m in models if m["ok"]]
broken = [m for m in models if not m["ok"]]
st.subheader(f"Models ({len(usable)})")
if usable:
    st.caption("The pretrained zoo first, then the models trained here (yours), newest first.")
    ui.show_models(usable)
else:
    st.info("No trained models found. Build the zoo with `python -m gradreg zoo` or train one on the Train page.")
ui.delete_own_model(usable)  # hidden in teacher mode; the zoo's models are never offered
for m in broken:
    st.warning(f"Unusable file `{m['path']}`: {m['reason']}")
st.subheader("Datasets")
st.markdown("\n".join(f"- **{d['name']}**: {'available' if d['available'] else 'not available'}. {d['detail']}"
                      for d in ui.datasets()))  # a list, not a table: the reasons are sentences, never cut off
st.subheader("Where the files are")
st.caption("For whoever runs this server: set these variables before `streamlit run app.py` to use other folders.")
st.markdown("\n".join(f"- {what}: `{path}` (`${variable}`)" for what, variable, path in ui.model_dirs()))
st.caption(ui.lessons_status())
