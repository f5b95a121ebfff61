"""Sweeps: a results folder's trials against λ, the mean over seeds with a band of ± one sd, and any trial opened in
the Attack lab. It reads files only: it never starts Ray nor trains anything."""

import streamlit as st

from gradreg import ui
from gradreg.sweeps.results import format_summary, lambda_series, summarize
from gradreg.viz import sweep_figures

ui.routed()
ui.share("sweeps.")
st.title("Sweeps")
st.markdown("Every model of a sweep (`python -m gradreg sweep FILE`, or the zoo, which is built as one) against λ: "
            "the line is the mean over seeds, the band ± one standard deviation, each circle one trial (hover for "
            "its name). Roles without λ (plain, adversarial training, distillation) are dotted lines.")
folders = {ui.folder_label(f): f for f in ui.sweep_folders()}
if not folders:
    st.info("No results table found. Run `python -m gradreg sweep sweeps/smoke.toml` (or build the zoo) and reload.")
    st.stop()
folder = folders[st.selectbox("Results folder", list(folders), key="sweeps.folder")]
rows, error = ui.sweep_results(folder)
if error:
    st.error(f"This results table cannot be read: {error}")
    st.stop()
failed = [r for r in rows if r["status"] == "failed"]
done = [r for r in rows if r["status"] == "done"]
st.caption(f"{len(done)} trials finished, {len(failed)} failed.")
if failed:
    with st.expander(f"Failed trials ({len(failed)})"):
        st.dataframe([{"trial": r["trial"], "error": r.get("error", "")} for r in failed], hide_index=True)
if not done:
    st.stop()
datasets = sorted({r["dataset"] for r in done})
dataset = st.segmented_control("Dataset", datasets, default=datasets[0], required=True, key="sweeps.dataset")
column, label, percent = ui.metric_picker(done, "sweeps")
series = lambda_series(done, column, dataset=dataset)
if not series:
    st.info(f"No finished trial on {dataset} has {label.lower()}.")
    st.stop()
st.plotly_chart(sweep_figures.sweep_lambda(series, metric=label, percent=percent), width="stretch",
                key="sweeps.figure")
with st.expander("Mean ± sd over seeds, every model"):
    st.code(format_summary(summarize([r for r in done if r["dataset"] == dataset])), language=None)
trials = {r["trial"]: r for r in done if r["dataset"] == dataset}
left, right = st.columns([3, 1], vertical_alignment="bottom")
name = left.selectbox("Open a trial in the Attack lab (with its reference model)", list(trials), key="sweeps.trial")
if right.button("Open in the Attack lab", icon=":material/bolt:"):
    row = trials[name]
    reference = next((r for r in done if r["trial"] == row.get("reference")), None)
    ui.open_in_attack_lab(folder, row, reference)
