"""Training in the app: the settings form, background runs (one ``TrainingJob`` per config, shared by every
session) and their live panel with curves and a Stop button.
"""

from __future__ import annotations

import json
import os

import streamlit as st

import torch

from gradreg.core.config import ACTIVATIONS, DEFENCES, RECIPES, TrainConfig, config_id, with_recipe
from gradreg.core.models import DEFAULT_MODEL, MODELS
from gradreg.lessons.zoo_views import AUTHORS_LAMBDAS
from gradreg.training import checkpoints, timing
from gradreg.training.jobs import TrainingJob, progress
from gradreg.training.regularizers import REGULARIZERS
from gradreg.ui.catalogue import datasets, usable_models
from gradreg.ui.labels import label
from gradreg.ui.limits import limit
from gradreg.ui.runs import busy, jobs, stop_training, training_job
from gradreg.viz import page_figures


def max_train_seconds() -> float:
    """The longest training the app accepts (``$GRADREG_MAX_TRAIN_SECONDS``, default 10 minutes)."""
    return float(os.environ.get("GRADREG_MAX_TRAIN_SECONDS", 600))


@st.cache_data(show_spinner=False, ttl=300, max_entries=32)
def _step_costs(cost_key: str, threads: int) -> timing.StepCosts:
    """A probe of one cost class of configs (``timing.cost_config`` as JSON) at ``threads`` torch threads, shared by
    every session for five minutes: the machine's load changes, so it is measured again after that."""
    return timing.probe(TrainConfig.from_dict(json.loads(cost_key)))


def training_estimate(config: TrainConfig) -> tuple[float, timing.StepCosts]:
    """(seconds ``config`` should train on this machine, the step costs measured for it): a probe of a few real
    steps of that kind of config, about a second, cached (see ``_step_costs``)."""
    key = json.dumps(timing.cost_config(config).to_dict(), sort_keys=True)
    costs = _step_costs(key, torch.get_num_threads())
    return timing.estimate(config, costs), costs


def _measured(costs: timing.StepCosts) -> str:
    return (f"timed on this machine: {costs.train * 1000:.3g} ms per training image, "
            f"{costs.predict * 1000:.3g} ms per evaluated image, {costs.device}")


def train_form(key: str = "train") -> TrainConfig | None:
    """Training settings in a form (no rerun per widget); returns a validated config once submitted."""
    available = [row["name"] for row in datasets() if row["available"]]
    with st.form(f"{key}.form"):
        left, middle, right = st.columns(3)
        dataset = left.selectbox("Dataset", available, index=available.index("mnist") if "mnist" in available else 0,
                                 key=f"{key}.dataset")
        model = left.selectbox("Model", sorted(MODELS), index=sorted(MODELS).index(DEFAULT_MODEL), key=f"{key}.model")
        recipe = left.selectbox("Recipe", list(RECIPES), format_func=label, key=f"{key}.recipe",
                                help="Weight init, BatchNorm's scale and Adam's ε (PAPER.md §2: at the authors' λ "
                                     "PyTorch's defaults lose clean accuracy).")
        activation = left.selectbox("Activation", ACTIVATIONS, key=f"{key}.activation")
        regularizer = middle.selectbox("Regularizer", sorted(REGULARIZERS), format_func=label,
                                       index=sorted(REGULARIZERS).index("grad_y"), key=f"{key}.regularizer")
        lam = middle.number_input("λ_eff (per-example mean)", 0.0, 1e4, AUTHORS_LAMBDAS["grad_y"], format="%g",
                                  key=f"{key}.lam", help="The authors' TensorFlow λ ÷ 512 (their MNIST choice: 110); "
                                                         "ignored without a regularizer.")
        defence = middle.selectbox("Defence", DEFENCES, format_func=label, key=f"{key}.defence")
        epochs = right.number_input("Epochs", 1, limit("epochs"), 2, key=f"{key}.epochs")
        n_train = right.number_input("Training images", 100, 55000, 10000, step=1000, key=f"{key}.n_train")
        lr = right.number_input("Learning rate (Adam)", 1e-5, 1e-1, 1e-3, format="%g", key=f"{key}.lr")
        seed = right.number_input("Seed", 0, 10_000, 0, key=f"{key}.seed")
        if not st.form_submit_button("Train", type="primary"):
            return None
    try:
        config = with_recipe(TrainConfig(dataset=dataset, model=model, activation=activation, regularizer=regularizer,
                                         lam=float(lam) if regularizer != "none" else 0.0, defence=defence,
                                         epochs=int(epochs), n_train=int(n_train), lr=float(lr), seed=int(seed)), recipe)
    except ValueError as err:
        st.error(f"Invalid settings: {err}")
        return None
    if _existing(config) is not None or len(busy()) >= limit("trainings"):
        return config  # start_training says why it does not start (a probe now would time a loaded machine)
    with st.spinner("Timing a few training steps of these settings on this machine…"):
        refusal = _over_limit(*training_estimate(config))
    if refusal:
        st.error(refusal)
        return None
    return config


def _over_limit(estimate: float, costs: timing.StepCosts) -> str:
    """Why a run of ``estimate`` seconds is refused, or "" when it is within the server's limit."""
    if estimate <= max_train_seconds():
        return ""
    return (f"This would take about {_duration(estimate)} ({_measured(costs)}); the limit is "
            f"{_duration(max_train_seconds())}. Use fewer epochs or training images.")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def start_training(config: TrainConfig) -> str:
    """Start ``config`` in the background unless it exists already or another run is busy; returns a message."""
    cid = config_id(config)
    if _existing(config) is not None:
        return f"Already trained: `{cid}` is loaded instead of retraining."
    if config.epochs > limit("epochs"):
        return f"{config.epochs} epochs is over this server's limit of {limit('epochs')} ($GRADREG_MAX_EPOCHS)."
    running = busy()
    if len(running) >= limit("trainings"):  # $GRADREG_MAX_TRAININGS runs at once (default 1: 2 cores, many users)
        return (f"Another run is in progress (`{running[0].id}`; this server allows {limit('trainings')} at a time); "
                "stop it or wait for it to finish.")
    estimate, costs = training_estimate(config)
    if refusal := _over_limit(estimate, costs):  # the form checked it; the machine may have slowed since
        return refusal
    jobs()[cid] = TrainingJob(config, root=checkpoints.user_dir(), estimate_seconds=estimate).start()
    st.session_state["train.job"] = cid
    return f"Started `{cid}`: about {_duration(estimate)} ({_measured(costs)})."


def _existing(config: TrainConfig) -> dict | None:
    cid = config_id(config)
    return next((m for m in usable_models() if m["id"] == cid and m["complete"]), None)


def training_panel() -> None:
    """The current run's progress, curves and Stop button (live while it runs), or its outcome."""
    job = training_job()
    if job is None:
        return
    if job["state"] == "running":
        _live_training()
    else:
        _render_job(job)


@st.fragment(run_every=1.0)
def _live_training() -> None:
    job = training_job()
    if job is not None and job["state"] != "running" and st.session_state.get("train.seen") != job["id"]:
        st.session_state["train.seen"] = job["id"]
        st.rerun()  # once, the whole app: the sidebar and every list pick up the finished model
    if job is not None:
        _render_job(job)


def _render_job(job: dict) -> None:
    state = job["state"]
    title = {"running": "Training", "done": "Trained", "stopped": "Stopped", "failed": "Failed"}[state]
    status = {"running": "running", "done": "complete", "stopped": "error", "failed": "error"}[state]
    with st.status(f"{title} `{job['id']}`", state=status, expanded=True):
        running = job["running"] if state == "running" else {}  # a finished run's last batch is no news
        # once it ended, its state ("done", "stopped", "failed"), not the batch counter it was reset to
        text = f"{job['phase'] or 'train'} · batch {job['batch']}/{job['batches']}" if state == "running" else state
        if job["elapsed"] is not None:
            text += f" · {_duration(job['elapsed'])}"
            text += f" of about {_duration(job['estimate_seconds'])}" if job["estimate_seconds"] else ""
        if running:
            text += f" · loss {running['loss']:.3f} · accuracy {running['accuracy']:.3f}"
        st.progress(progress(job), text=text)
        if job["epochs"]:
            st.plotly_chart(page_figures.training_curves(job["epochs"]), width="stretch", key="train.curves")
        if state == "running":
            st.button("Stop", key="train.stop", on_click=stop_training, args=(job["id"],), icon=":material/stop:")
        elif state == "done":
            st.success(f"Test accuracy {job['result']['test_accuracy']:.2%}. The model is saved and listed on "
                       "every page.")
        elif state == "stopped":
            st.warning("Stopped before the end: nothing was saved.")
        else:
            st.error(f"Training failed: {job['error']}")
