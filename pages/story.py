"""The paper's story in six steps, each with its live figure; every number in the text is read from the zoo's cards."""

import streamlit as st

from gradreg import ui
from gradreg.lessons import panels, zoo_views
from gradreg.viz import page_figures

ui.routed()
ui.share("story.")  # the keys "story.…" that gradreg.ui.urlstate knows travel in the URL
st.title("The paper's story")
manifest = ui.zoo_or_stop()
plain, pair = zoo_views.reference_entry(manifest), zoo_views.showcase(manifest)
if plain is None or pair is None:
    st.info("The story needs the zoo's plain model and a Grad Reg (y) model; build it with `python -m gradreg zoo`.")
    st.stop()
regular = pair[1]
by_name = {e["name"]: e for e in manifest["models"] if e.get("card")}
dataset, n = manifest["dataset"], plain["card"]["n"]
STEPS = ("Noisy gradients", "FGSM fools it", "Penalize the gradient", "Smooth and robust", "The cost",
         "Caveat: PGD")
st.session_state.setdefault("story.step", 0)


def move(by: int) -> None:
    st.session_state["story.step"] = min(max(st.session_state["story.step"] + by, 0), len(STEPS) - 1)


step = st.segmented_control("Step", range(len(STEPS)), required=True, key="story.step",
                            format_func=lambda i: f"{i + 1}. {STEPS[i]}")
epsilons = zoo_views.card_epsilons(manifest)
default_eps = min(epsilons, key=lambda e: abs(e - 0.1))
if step == 0:  # the noisy-gradients step attacks nothing: no ε to choose
    eps = st.session_state.get("story.eps", default_eps)
else:
    eps = st.select_slider("ε of the attacks (L∞, pixel units)", epsilons, key="story.eps", value=default_eps,
                           format_func=lambda v: f"{v:g}")
cards = {name: zoo_views.card_values(entry["card"], eps) for name, entry in by_name.items()}
p, r, lam = cards[plain["name"]], cards[regular["name"]], regular["config"]["lam"]
digits = tuple(indices[0] for indices in ui.gallery(dataset).values())[:4]


def maps(rows: dict[str, str]) -> None:
    with ui.failures("Computing the input gradients"):
        st.plotly_chart(ui.map_figure(rows, dataset, digits, shared_scale=False), width="stretch",
                        key=f"story.maps.{step}")
        st.caption("∇ₓ log p of the predicted class, each map on its own scale: red raises it, blue lowers it.")


def attacked(entry: dict) -> None:
    with ui.failures(f"Attacking {entry['name']}"):
        shown = ui.showcase_digit(ui.signature(), eps)  # a digit plain loses at this ε and the regularized keeps
        panel = ui.attack_panel(entry["id"], dataset, digits[0] if shown is None else shown, "fgsm", eps, None, (),
                                "input_gradient")
        st.markdown(panels.attack_summary(entry["name"], panel))
        if note := panels.blank_note(panel, entry["name"]):
            st.caption(note)
        left, right = st.columns([5, 2])
        left.plotly_chart(page_figures.attack_row(panel), width="stretch", key=f"story.row.{step}")
        right.plotly_chart(page_figures.probability_pair(panel), width="stretch", key=f"story.bars.{step}")
        st.caption("Perturbation: red brightens a pixel, blue darkens it. Saliency (input gradient of the class "
                   "predicted on that image): red raises it, blue lowers it.")


if step == 0:
    st.markdown(f"The plain model (`{plain['name']}`) classifies {p['clean']:.1%} of the zoo's first {n} test "
                f"digits correctly. Its input gradient says how each pixel would change its answer; it looks like "
                f"scattered noise, not like the digit (mean ‖∇ₓ CE‖₂ = {p['grad_norm']:.3g}).")
    maps({plain["name"]: plain["id"]})
elif step == 1:
    st.markdown(f"FGSM moves every pixel by ε in the direction of that gradient's sign. At ε = {eps:g} the plain "
                f"model's accuracy falls from {p['clean']:.1%} to {p['fgsm']:.1%} on {n} test digits, with changes "
                "a person barely notices. Move ε and watch the digit below.")
    attacked(plain)
elif step == 2:
    grid = zoo_views.lambda_grid(manifest).get("grad_y", [])
    st.markdown("Ross & Doshi-Velez add the squared input gradient of the loss to the training objective "
                "(double backpropagation): a model may only be sensitive where the data says it must be.")
    st.latex(r"\mathcal{L} = \frac{1}{N}\sum_n \mathrm{CE}(y_n, f(x_n)) + \lambda \frac{1}{N}\sum_n "
             r"\lVert \nabla_x \mathrm{CE}(y_n, f(x_n)) \rVert_2^2")
    st.markdown(f"The zoo trains it at λ_eff ∈ {{{', '.join(f'{v:g}' for v in grid)}}}. Pick one: its card against "
                "the plain model's.")
    chosen = st.select_slider("λ_eff", grid, value=lam, format_func=lambda v: f"{v:g}", key="story.lam")
    row = next(s for s in zoo_views.lambda_rows(manifest, "grad_y", eps) if s["lam"] == chosen)
    ui.card_metrics(row, p, n=n)
elif step == 3:
    trend = "drops" if r["grad_norm"] < p["grad_norm"] else "rises"
    st.markdown(f"With λ_eff = {lam:g} (`{regular['name']}`, the zoo's best FGSM accuracy among models within two "
                f"points of plain's clean accuracy), FGSM at ε = {eps:g} leaves {r['fgsm']:.1%} accuracy instead of "
                f"{p['fgsm']:.1%}. The paper expects its maps to be smooth and to follow the strokes: compare. The "
                f"mean ‖∇ₓ CE‖₂ on the test digits {trend} from {p['grad_norm']:.3g} to {r['grad_norm']:.3g}: CE's "
                f"gradient also shrinks with confidence (mean max probability {p['max_prob']:.1%} plain, "
                f"{r['max_prob']:.1%} regularized); what the penalty changes is where the gradient points.")
    maps({plain["name"]: plain["id"], regular["name"]: regular["id"]})
    attacked(regular)
elif step == 4:
    sweep = zoo_views.lambda_rows(manifest, "grad_y", eps)
    top = sweep[-1]
    lead = "Robustness is paid in accuracy" if top["clean"] < p["clean"] else "Here the penalty costs no accuracy"
    authors = next((s for s in sweep if s["lam"] == zoo_views.AUTHORS_LAMBDAS["grad_y"]), None)
    at_authors = (f" At the authors' own choice, λ_eff = {authors['lam']:g} (`{authors['name']}`), it keeps "
                  f"{authors['clean']:.1%}." if authors else "")
    st.markdown(f"{lead}: clean accuracy on the zoo's first {n} test images {p['clean']:.1%} for plain, "
                f"{r['clean']:.1%} at λ_eff = {lam:g}, "
                f"{top['clean']:.1%} at the zoo's largest λ_eff = {top['lam']:g}.{at_authors} The authors chose λ on "
                "transferred FGSM examples and warn that too large a λ costs accuracy; how much also depends on the "
                "network and its training (the README's recipe ablation).")
    marks = {authors["lam"]: "authors' λ"} if authors else {}
    st.plotly_chart(page_figures.lambda_sweep(sweep, lam=lam, reference=p, marks=marks), width="stretch",
                    key="story.sweep")
    st.caption("Dotted: the plain model. Black line: the story's λ; dashed: the authors'. From the zoo's cards.")
else:
    others = [name for name in ("fgsm_at", "pgd_at") if name in cards]
    listing = "; ".join(f"`{name}` FGSM {cards[name]['fgsm']:.1%}, PGD {cards[name]['pgd']:.1%}" for name in others)
    caveat = ""
    if "pgd_at" in cards:
        stronger = cards["pgd_at"]["pgd"] > r["pgd"]
        caveat = (f" Under PGD, PGD adversarial training keeps {'more' if stronger else 'no more'} than "
                  f"`{regular['name']}` here ({cards['pgd_at']['pgd']:.1%} vs {r['pgd']:.1%}); move ε to compare.")
    st.markdown(f"FGSM takes one step; PGD takes many small ones from a random start. At ε = {eps:g} under PGD, "
                f"plain keeps {p['pgd']:.1%} (FGSM: {p['fgsm']:.1%}) and `{regular['name']}` {r['pgd']:.1%} "
                f"(FGSM: {r['fgsm']:.1%}). "
                f"{listing + '.' if listing else ''}{caveat} The paper penalizes the L2 norm of the gradient yet "
                "attacks in L∞, and single-step numbers flatter gradient-masked models (the Attack lab checks them).")
    records = [{"model": name, "eps": c["eps"], "accuracy": c["pgd"]} for name in [plain["name"], regular["name"],
               *others] for c in by_name[name]["card"]["curves"] if c["pgd"] is not None]
    st.plotly_chart(page_figures.accuracy_curves(records), width="stretch", key="story.pgd")
    st.caption(f"PGD accuracy against ε on the zoo's first {n} test digits, from the cards.")
    if ui.advanced() and st.toggle("Check it live: PGD at this ε on the first 64 test digits", key="story.live"):
        with ui.failures("Running PGD"):
            entries = [plain, regular, *(by_name[name] for name in others)]
            for column, entry in zip(st.columns(len(entries)), entries):
                column.metric(entry["name"], f"{ui.robust_point(entry['id'], dataset, 64, 'pgd', eps, ()):.1%}")

back, forward, _ = st.columns([1, 1, 6])
back.button("Back", key="story.back", on_click=move, args=(-1,), disabled=step == 0, icon=":material/arrow_back:")
forward.button("Next", key="story.next", on_click=move, args=(1,), disabled=step == len(STEPS) - 1,
               icon=":material/arrow_forward:", type="primary")
