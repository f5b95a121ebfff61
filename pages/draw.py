"""Draw or upload a digit: every chosen model predicts it, shows its input gradient, and is attacked by FGSM / TGSM."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from gradreg import ui
from gradreg.lessons import digit, panels, zoo_views
from gradreg.viz import figures, page_figures

ui.routed()
ui.share("draw.")  # the keys "draw.…" that gradreg.ui.urlstate knows travel in the URL
st.title("Draw a digit")
st.markdown("Draw a digit (white ink on black) or upload a picture of one. It is turned into an MNIST-style 28×28 "
            "image (cropped, fitted in 20×20, centred by mass) and every chosen model reacts: its prediction, its "
            "input gradient ∇ₓ log p, and FGSM / TGSM at the ε below, pushing away from its own answer.")
manifest = ui.zoo()
usable = ui.usable_models_or_stop()
default = zoo_views.lineup(manifest) if manifest else [m["id"] for m in usable[:2]]
ids = ui.model_picker("draw", default=default, label_text="Models (1–6)")
eps = st.slider("ε of FGSM / TGSM (L∞, pixel units)", 0.0, 0.5, 0.1, 0.01, key="draw.eps")
if not ids:
    st.info("Pick at least one model.")
    st.stop()

source, preview = st.columns([2, 1])
mode = source.segmented_control("Digit from", ["draw", "upload"], default="draw", required=True, key="draw.source",
                                format_func=str.capitalize)
image = None
with source:
    if mode == "draw":
        canvas = st_canvas(stroke_width=22, stroke_color="#FFFFFF", background_color="#000000", height=280,
                           width=280, return_image_data=True, key="draw.canvas")
        image = digit.canvas_digit(canvas.image_data)
        if image is None:
            st.info("The canvas is empty: draw a digit with the mouse (or a finger) and release.")
    else:
        upload = st.file_uploader(f"A picture of one digit (up to {digit.MAX_BYTES // 2**20} MB)",
                                  max_upload_size=digit.MAX_BYTES // 2**20, key="draw.upload")
        if upload is None:
            st.info("Upload a PNG or JPEG of one digit: any size, colour or polarity.")
        else:
            try:
                image = digit.preprocess_image(upload.getvalue())
            except digit.EmptyImageError as err:
                st.info(f"Nothing to classify: {err}.")
            except digit.UploadError as err:
                st.error(f"This file cannot be used: {err}.")
if image is None:
    st.stop()
preview.image(panels.thumbnail_strip(image[None, None], scale=6, gap=0), caption="What the models see (28×28)")

with ui.failures("Classifying the digit"):
    reactions = {ui.short_name(cid): ui.digit_reaction(cid, image.tobytes(), float(eps)) for cid in ids}
    st.dataframe([digit.summary_row(name, r) for name, r in reactions.items()], hide_index=True, width="stretch",
                 column_config={"confidence": st.column_config.NumberColumn(format="percent"),
                                "FGSM confidence": st.column_config.NumberColumn(format="percent")})
    bars = figures.probability_bars({name: r["fgsm"]["probs_clean"] for name, r in reactions.items()})
    st.plotly_chart(bars.update_layout(height=260, margin={"l": 50, "r": 10, "t": 10, "b": 40}), width="stretch",
                    key="draw.probs")
    cells = [[{"z": r["fgsm"]["saliency_clean"], "kind": "signed", "name": f"{name} · saliency"},
              {"z": r["fgsm"]["adversarial"], "kind": "gray", "name": f"{name} · FGSM → {r['fgsm']['pred_adv']}"},
              {"z": r["tgsm"]["adversarial"], "kind": "gray", "name": f"{name} · TGSM → {r['tgsm']['pred_adv']}"}]
             for name, r in reactions.items()]
    titles = [f"{name} ({r['fgsm']['pred_clean']})" for name, r in reactions.items()]
    st.plotly_chart(page_figures.image_grid(cells, row_titles=titles, cell_px=150,
                                           column_titles=["saliency ∇ₓ log p", f"FGSM, ε = {eps:g}",
                                                          f"TGSM to (pred + 1) mod 10, ε = {eps:g}"]),
                    width="stretch", key="draw.grid")
    st.caption("Saliency: red raises the predicted class, blue lowers it. FGSM raises the loss of the model's own "
               "answer; TGSM lowers the loss of the next class. Smooth, stroke-shaped maps and attacks that need a "
               "large ε are the signs of a regularized model.")
