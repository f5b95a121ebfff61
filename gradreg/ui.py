"""Streamlit glue: the only gradreg module that imports streamlit.

Cached loaders keyed by primitives (ids, numbers), shared widgets that return plain values, and human labels.
Models cached here are shared by every session and thread, so they are frozen and in eval mode.
"""

from __future__ import annotations

import os

import streamlit as st

from gradreg import checkpoints
from gradreg.config import ACTIVATIONS, DEFENCES, TrainConfig, config_id
from gradreg.data import dataset_status
from gradreg.models import MODELS
from gradreg.regularizers import REGULARIZERS
from gradreg.train import estimate_seconds, train

LABELS = {
    "none": "None", "grad_y": "Grad Reg (y)", "grad_uniform": "Grad Reg (1/K)", "grad_fd": "Grad Reg (finite diff.)",
    "fgsm_at": "FGSM adv. training", "pgd_at": "PGD adv. training", "distill": "Defensive distillation",
}


def _dirs_signature() -> tuple:
    """Changes whenever a checkpoint directory changes, so listings refresh after training."""
    stamps = []
    for directory in checkpoints.search_dirs():
        stamps.append((str(directory), directory.stat().st_mtime_ns if directory.is_dir() else 0))
    return tuple(stamps)


@st.cache_data(show_spinner=False)
def _list_models(signature: tuple) -> list[dict]:
    rows = []
    for info in checkpoints.list_checkpoints():
        row = {"id": info.id, "ok": info.ok, "reason": info.reason, "path": str(info.path),
               "complete": info.complete, "test_accuracy": info.metrics.get("test_accuracy")}
        if info.config is not None:
            row.update(info.config.to_dict())
        rows.append(row)
    return rows


def list_models() -> list[dict]:
    """Every checkpoint in the user and shipped directories as plain dicts (unusable ones with a reason)."""
    return _list_models(_dirs_signature())


@st.cache_data(show_spinner=False, ttl=600)
def datasets() -> list[dict]:
    return dataset_status()


@st.cache_resource(show_spinner=False, max_entries=64)
def load_model(checkpoint_id: str):
    """The model of a checkpoint id, shared across sessions: eval mode, frozen parameters."""
    return checkpoints.load(checkpoint_id).build(frozen=True)


def describe(row: dict) -> str:
    """A short human label for a model row."""
    if not row.get("ok"):
        return f"{row['path']} (unusable)"
    parts = [row["model"], LABELS.get(row["regularizer"], row["regularizer"])]
    if row["regularizer"] != "none":
        parts[-1] += f" λ={row['lam']:g}"
    if row["defence"] != "none":
        parts.append(LABELS.get(row["defence"], row["defence"]))
    return " · ".join(parts)


def max_train_seconds() -> float:
    """The longest training the app accepts (``$GRADREG_MAX_TRAIN_SECONDS``, default 10 minutes)."""
    return float(os.environ.get("GRADREG_MAX_TRAIN_SECONDS", 600))


def train_form(key: str = "train") -> TrainConfig | None:
    """Training settings in a form (no rerun per widget); returns a validated config once submitted."""
    available = [row["name"] for row in datasets() if row["available"]]
    with st.form(f"{key}.form"):
        left, middle, right = st.columns(3)
        dataset = left.selectbox("Dataset", available, key=f"{key}.dataset")
        model = left.selectbox("Model", sorted(MODELS), index=sorted(MODELS).index("small_cnn"), key=f"{key}.model")
        activation = left.selectbox("Activation", ACTIVATIONS, key=f"{key}.activation")
        regularizer = middle.selectbox("Regularizer", sorted(REGULARIZERS), format_func=LABELS.get,
                                       index=sorted(REGULARIZERS).index("grad_y"), key=f"{key}.regularizer")
        lam = middle.number_input("λ_eff (per-example mean)", 0.0, 1e4, 10.0, format="%g", key=f"{key}.lam",
                                  help="The authors' TensorFlow λ ÷ 512; ignored without a regularizer.")
        defence = middle.selectbox("Defence", DEFENCES, format_func=lambda d: LABELS.get(d, d), key=f"{key}.defence")
        epochs = right.number_input("Epochs", 1, 100, 2, key=f"{key}.epochs")
        n_train = right.number_input("Training images", 100, 55000, 10000, step=1000, key=f"{key}.n_train")
        lr = right.number_input("Learning rate (Adam)", 1e-5, 1e-1, 1e-3, format="%g", key=f"{key}.lr")
        seed = right.number_input("Seed", 0, 10_000, 0, key=f"{key}.seed")
        if not st.form_submit_button("Train", type="primary"):
            return None
    try:
        config = TrainConfig(dataset=dataset, model=model, activation=activation, regularizer=regularizer,
                             lam=float(lam) if regularizer != "none" else 0.0, defence=defence, epochs=int(epochs),
                             n_train=int(n_train), lr=float(lr), seed=int(seed))
    except ValueError as err:
        st.error(f"Invalid settings: {err}")
        return None
    estimate = estimate_seconds(config)
    if estimate > max_train_seconds():
        st.error(f"This would take about {estimate / 60:.0f} min on this machine; the limit is "
                 f"{max_train_seconds() / 60:.0f} min. Use fewer epochs or training images.")
        return None
    return config


def run_training(config: TrainConfig) -> dict | None:
    """Load ``config``'s checkpoint if it exists, else train it with live progress and save it.

    Returns the checkpoint's id and metrics, or None when the user stopped the run (nothing is saved then).
    """
    path = checkpoints.find(config_id(config))
    if path is not None and checkpoints.inspect(path).complete:
        st.success(f"Already trained: loaded `{config_id(config)}` instead of retraining.")
        return {"id": config_id(config), **checkpoints.inspect(path).metrics}
    epochs: list[dict] = []
    with st.status(f"Training `{config_id(config)}` (about {estimate_seconds(config):.0f} s)…", expanded=True) as box:
        bar = st.progress(0.0, text="starting")
        chart = st.empty()
        st.caption("Leaving or reloading the page stops the run after the current batch; nothing is saved then.")

        def on_batch(batch: int, batches: int, running: dict) -> None:
            bar.progress(batch / batches, text=f"batch {batch}/{batches} · loss {running['loss']:.3f} · "
                                               f"accuracy {running['accuracy']:.3f}")

        def on_epoch(stats) -> None:
            epochs.append({"epoch": len(epochs) + 1, "loss": stats.loss, "penalty": stats.penalty,
                           "val_accuracy": stats.val_accuracy})
            chart.line_chart(epochs, x="epoch", y=["loss", "penalty", "val_accuracy"])

        ckpt = train(config, on_epoch=on_epoch, on_batch=on_batch)
        checkpoints.save(ckpt)
        _list_models.clear()
        box.update(label=f"Trained `{ckpt.id}`: test accuracy {ckpt.metrics['test_accuracy']:.2%}", state="complete")
    return {"id": ckpt.id, **ckpt.metrics}
