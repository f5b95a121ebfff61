"""λ explorer: one slider over the zoo's λ grid moves every card metric, its curve against λ, and the saliency maps."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import zoo_views
from gradreg.viz import page_figures

ui.routed()
ui.share("lambda.")
st.title("λ explorer")
st.markdown("How strength trades for accuracy: each step of the slider is one model of the zoo, trained with "
            "λ_eff · mean‖∇ₓ CE‖² added to its loss. The numbers come from the zoo's cards (white-box attacks "
            "on the model itself, and FGSM examples crafted on the plain model); the maps are computed live.")
manifest = ui.zoo_or_stop()
grid = zoo_views.lambda_grid(manifest)
sweepable = {name: lams for name, lams in grid.items() if len(lams) > 1}
single = [f"{ui.label(name)} (λ = {lams[0]:g})" for name, lams in grid.items() if len(lams) == 1]
if not sweepable:
    st.info("The zoo holds no regularizer at more than one λ. Build a sweep with `python -m gradreg zoo`.")
    st.stop()
regularizer = st.segmented_control("Regularizer", list(sweepable), default=next(iter(sweepable)), required=True,
                                   format_func=ui.label, key="lambda.regularizer")
if single:
    st.caption(f"The zoo has a single λ for {', '.join(single)}: no sweep; compare them in the Attack lab.")
dataset, reference = manifest["dataset"], zoo_views.reference_entry(manifest)
with ui.failures("Loading the test images", stop=True):
    digits = ui.digits_picker("lambda", dataset)
sweep_ids = [r["id"] for r in zoo_views.lambda_rows(manifest, regularizer, 0.1)]
with ui.failures("Computing the saliency maps"):
    ui.prewarm_maps(sweep_ids + ([reference["id"]] if reference else []), dataset, digits)


@ui.fragment
def explorer() -> None:
    left, right = st.columns(2)
    lams = sweepable[regularizer]
    authors = zoo_views.AUTHORS_LAMBDAS.get(regularizer)
    lam = left.select_slider("λ_eff (log scale: one step per zoo model)", lams, key=f"lambda.lam.{regularizer}",
                             value=authors if authors in lams else lams[len(lams) // 2],
                             format_func=lambda v: f"{v:g}" + (" (the authors')" if v == authors else ""))
    epsilons = zoo_views.card_epsilons(manifest)
    eps = right.select_slider("ε of the attacks (L∞, pixel units)", epsilons, format_func=lambda v: f"{v:g}",
                              value=min(epsilons, key=lambda e: abs(e - 0.1)), key="lambda.eps")
    sweep = zoo_views.lambda_rows(manifest, regularizer, eps)
    row = next(r for r in sweep if r["lam"] == lam)
    base = zoo_views.card_values(reference["card"], eps) if reference else None
    if base is not None and (spread := zoo_views.seed_spread(manifest, reference["name"], eps)):
        base["spread"] = spread
    ui.card_metrics(row, base, n=manifest.get("n_eval"))
    chart, maps = st.columns(2)
    marks = {authors: "authors' λ"} if authors else {}
    chart.plotly_chart(page_figures.lambda_sweep(sweep, lam=lam, reference=base, marks=marks), width="stretch",
                       key="lambda.sweep")
    seeded = [f"λ {r['lam']:g}: {r['spread']['seeds']} seeds" for r in sweep if "spread" in r]
    seeded += [f"plain: {base['spread']['seeds']} seeds"] if base and "spread" in base else []
    chart.caption("Dotted: the plain model. Black line: the current λ; dashed: the authors' λ_eff (PAPER.md §1). "
                  f"Accuracies on the zoo's first {manifest.get('n_eval', '?')} test images."
                  + (f" Error bars and shaded band: ± one sd over seeds ({'; '.join(seeded)})." if seeded else ""))
    if not digits:
        maps.info("Pick at least one digit to see its input gradients.")
        return
    with maps, ui.failures("Computing the saliency maps"):
        shared = st.toggle("One colour scale per digit (compare magnitudes)", value=True, key="lambda.shared")
        rows = ({"plain": reference["id"]} if reference else {}) | {f"λ = {lam:g}": row["id"]}
        st.plotly_chart(ui.map_figure(rows, dataset, digits, shared_scale=shared), width="stretch",
                        key="lambda.maps")
        st.caption("Input gradients ∇ₓ log p of the predicted class; red raises it, blue lowers it.")


explorer()
