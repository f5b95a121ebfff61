"""The training runs this server started, shared by every session: a registry that needs neither torch nor the
training code, so the sidebar's progress line (every page's frame) reads it before either is imported. The runs
themselves are started by ``gradreg.ui.train_panel``."""

from __future__ import annotations

import streamlit as st


@st.cache_resource(show_spinner=False)
def jobs() -> dict:
    return {}  # checkpoint id → ``gradreg.training.jobs.TrainingJob``: one machine, one training at a time


def busy() -> list:
    """The runs still training."""
    return [job for job in jobs().values() if job.snapshot()["state"] == "running"]


def training_job() -> dict | None:
    """A snapshot of this session's training run (else of any running one), or None."""
    registry = jobs()
    job = registry.get(st.session_state.get("train.job", ""))
    job = job or next((j for j in registry.values() if j.snapshot()["state"] == "running"), None)
    return job.snapshot() if job is not None else None


def stop_training(checkpoint_id: str) -> None:
    job = jobs().get(checkpoint_id)
    if job is not None:
        job.stop()
