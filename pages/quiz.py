"""Quiz: which model made this input gradient / adversarial example? Questions come from the zoo's real models."""

import random

import streamlit as st

from gradreg import ui
from gradreg.lessons import quiz
from gradreg.viz import page_figures

ui.routed()
ui.share("quiz.")  # the keys "quiz.…" that gradreg.ui.urlstate knows travel in the URL
st.title("Quiz: which model made this?")
manifest = ui.zoo_or_stop()
candidates = quiz.candidates(manifest)
if len(candidates) < 2:
    st.info("The quiz needs a plain and a regularized model in the zoo; build it with `python -m gradreg zoo`.")
    st.stop()
configs = {e["name"]: e["config"] for e in manifest["models"]}


def title(name: str) -> str:
    """A choice's label in words: its regularizer (with λ) and defence, or "Plain (no defence)"."""
    config = configs[name]
    parts = [f"{ui.label(config['regularizer'])}, λ = {config['lam']:g}"] if config["regularizer"] != "none" else []
    parts += [ui.label(config["defence"])] if config["defence"] != "none" else []
    return " + ".join(parts) or "Plain (no defence)"


titles = {c["name"]: title(c["name"]) for c in candidates}
st.session_state.setdefault("quiz.seed", random.randrange(quiz.FIRST_SEEDS))  # precomputed: an instant first question
st.session_state.setdefault("quiz.answers", {})  # seed → whether the guess was right


def answer(seed: int, guess: str, truth: str) -> None:
    st.session_state["quiz.answers"].setdefault(seed, guess == truth)  # the first guess counts


def next_question() -> None:
    st.session_state["quiz.seed"] += 1


seed = st.session_state["quiz.seed"]
if quiz.drawn_kind(len(candidates), seed) == "adversarial":  # a map question attacks nothing: no ε to choose
    eps = st.select_slider("ε of the adversarial examples (FGSM, L∞)", [0.1, 0.2, 0.3], value=0.2, key="quiz.eps")
else:
    eps = st.session_state.get("quiz.eps", 0.2)
with ui.failures("Making the question", stop=True):
    q = ui.quiz_question(tuple((c["name"], c["id"]) for c in candidates), manifest["dataset"], seed, float(eps))
answers = st.session_state["quiz.answers"]
right, asked = quiz.score(list(answers.values()))
st.metric("Score", f"{right} / {asked}", help="Right answers / questions answered in this session")
if q["kind"] == "saliency":
    st.markdown(f"This is the **input gradient** ∇ₓ log p of one model for this test digit (label {q['label']}). "
                "Which model made it?")
    cells = [[{"z": q["image"], "kind": "gray", "name": "digit"}, {"z": q["shown"], "kind": "signed", "name": "map"}]]
    columns = ["test digit", "input gradient"]
else:
    st.markdown(f"This is an **FGSM adversarial example** (ε = {q['eps']:g}) crafted on one model for this test digit "
                f"(label {q['label']}), and its perturbation. Which model was attacked?")
    cells = [[{"z": q["image"], "kind": "gray", "name": "digit"}, {"z": q["shown"], "kind": "gray", "name": "adv."},
              {"z": q["delta"], "kind": "signed", "level": q["eps"], "name": "perturbation"}]]
    columns = ["test digit", "adversarial", "perturbation"]
st.plotly_chart(page_figures.image_grid(cells, column_titles=columns, cell_px=220), width="content", key="quiz.picture")
st.caption("Red raises the predicted class's score, blue lowers it." if q["kind"] == "saliency" else
           "Perturbation: red brightens a pixel, blue darkens it.")
for column, name in zip(st.columns(len(q["choices"])), q["choices"]):
    column.button(titles[name], key=f"quiz.choice.{name}", on_click=answer, args=(seed, name, q["answer"]),
                  disabled=seed in answers, width="stretch")
if seed in answers:
    (st.success if answers[seed] else st.error)("Right!" if answers[seed] else "Not this time.")
    st.markdown(quiz.explain(q, titles=titles))
    st.button("Next question", key="quiz.next", on_click=next_question, type="primary", icon=":material/arrow_forward:")
else:
    st.caption("Hint: smooth maps that follow the strokes come from input-gradient regularization; an all-zero "
               "picture means the gradient underflowed (gradient masking).")
