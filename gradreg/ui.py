"""Streamlit glue: cached loaders and computations keyed by primitives (ids, numbers), human labels, and the page
frame. With ``gradreg.ui_widgets`` (shared widgets) and ``gradreg.ui_train`` (training) the only gradreg modules
that import streamlit. Models cached here are shared by every session and thread, so they are frozen and in eval mode.
The pretrained zoo is read from ``$GRADREG_ZOO_DIR`` (default: the shipped ``checkpoints/``), models trained in the
app go to ``$GRADREG_CHECKPOINT_DIR``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st
import torch

from gradreg import checkpoints, explore, viz, viz_explore
from gradreg.data import CorruptDataset, DatasetUnavailable, dataset_status, load_dataset
from gradreg.evaluate import robust_accuracy
from gradreg.saliency import SALIENCY_METHODS
from gradreg.zoo import read_manifest

# Several sessions and a training thread share 2 cores: torch's default of one intra-op thread per core made a
# PGD 40–200× slower under load (spinning OpenMP workers); one thread each keeps every panel responsive.
torch.set_num_threads(int(os.environ.get("GRADREG_UI_THREADS", "1")))

LABELS = {
    "none": "None", "grad_y": "Grad Reg (y)", "grad_uniform": "Grad Reg (1/K)", "grad_fd": "Grad Reg (finite diff.)",
    "fgsm_at": "FGSM adv. training", "pgd_at": "PGD adv. training", "distill": "Defensive distillation",
    "fgsm": "FGSM", "tgsm": "TGSM (targeted)", "iterated_tgsm": "Iterated TGSM (targeted, unbounded)",
    "bim": "BIM", "pgd": "PGD", "jsma": "JSMA (targeted)", "square": "Square (gradient-free)",
    "input_gradient": "Input gradient ∇ₓ log p", "loss_gradient": "Loss gradient ∇ₓ CE",
    "sum_log_prob_gradient": "∇ₓ Σ log p (1/K view)", "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad", "input_x_gradient": "Input × Gradient", "guided_backprop": "Guided Backprop",
    "deeplift": "DeepLIFT", "occlusion": "Occlusion", "gradcam": "Grad-CAM",
    "next": "next class (y + 1) mod K", "least_likely": "least likely class", "random": "random other class",
}


def enter_page() -> None:
    """Called by ``app.py`` right before it runs the chosen page (see ``routed``)."""
    st.session_state["app.routed"] = True


def routed() -> None:
    """Make sure the page runs inside ``app.py``'s router. When a fresh server's first request is a deep link and a
    ``pages/`` folder exists, Streamlit's legacy multipage mode runs the page file on its own, without layout or
    navigation (streamlit/streamlit#10276): then ``enter_page`` did not run; switch the mode off and rerun, once
    per session (AppTest runs every script in that mode, and a second rerun would drop a button click)."""
    if st.session_state.pop("app.routed", False) or st.session_state.get("app.rerouted"):
        return
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for this mode

    st.session_state["app.rerouted"] = True
    PagesManager.uses_pages_directory = False
    st.rerun()


def label(key: str) -> str:
    return LABELS.get(key, key)


@contextmanager
def failures(what: str, *, stop: bool = False) -> Iterator[None]:
    """Show a known failure (unusable checkpoint, missing dataset, a method that does not apply) as ``st.error``
    with its message instead of a traceback; the rest of the page still renders, unless ``stop``."""
    try:
        yield
    except (checkpoints.CheckpointError, DatasetUnavailable, CorruptDataset, ValueError) as err:
        st.error(f"{what} failed: {err}")
        if stop:
            st.stop()


def saliency_methods() -> list[str]:
    return list(SALIENCY_METHODS)


def zoo_dir() -> Path:
    """The pretrained zoo's directory (``$GRADREG_ZOO_DIR``, default the shipped ``checkpoints/``)."""
    return Path(os.environ.get("GRADREG_ZOO_DIR") or checkpoints.SHIPPED_DIR)


def _stamp(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


def signature() -> tuple:
    """Changes whenever a model directory or the manifest changes, so listings refresh after training."""
    user, zoo = checkpoints.user_dir(), zoo_dir()
    return (str(user), _stamp(user), str(zoo), _stamp(zoo), _stamp(zoo / "manifest.json"))


@st.cache_data(show_spinner=False, max_entries=8)
def _manifest(signature: tuple) -> tuple[dict | None, str]:
    try:
        return read_manifest(signature[2]), ""
    except ValueError as err:
        return None, str(err)


def zoo() -> dict | None:
    """The zoo's manifest, or None when there is none (or it is unreadable)."""
    return _manifest(signature())[0]


def zoo_or_stop() -> dict:
    """The zoo's manifest; otherwise an explanation on the page, and the page stops there."""
    manifest, error = _manifest(signature())
    if error:
        st.error(f"The pretrained zoo cannot be read: {error}")
    if manifest is None or not manifest["models"]:
        st.info(f"No pretrained zoo in `{zoo_dir()}` yet. Build it with `python -m gradreg zoo` (or point "
                "`GRADREG_ZOO_DIR` at one). The Train page works without it.")
        st.stop()
    return manifest


@st.cache_data(show_spinner=False, max_entries=8)
def _catalogue(signature: tuple) -> list[dict]:
    return explore.catalogue(_manifest(signature)[0], signature[2], signature[0])


def list_models() -> list[dict]:
    """Every checkpoint in the user and zoo directories as plain dicts (unusable ones with a reason)."""
    return _catalogue(signature())


def usable_models(dataset: str | None = None) -> list[dict]:
    return [m for m in list_models() if m["ok"] and (dataset is None or m["dataset"] == dataset)]


def describe(row: dict) -> str:
    """A short human label for a model row: zoo name or settings, then λ and defence."""
    if not row.get("ok"):
        return f"{row['path']} (unusable)"
    parts = [row["name"] or row["model"], label(row["regularizer"])]
    if row["regularizer"] != "none":
        parts[-1] += f" λ={row['lam']:g}"
    if row["defence"] != "none":
        parts.append(label(row["defence"]))
    return " · ".join(p for p in parts if p != "None") + ("" if row["source"] == "zoo" else " (yours)")


@st.cache_resource(show_spinner=False, max_entries=64)
def _load(path: str, stamp: int) -> torch.nn.Module:
    return checkpoints.load(path).build(frozen=True)


def load_model(checkpoint_id: str) -> torch.nn.Module:
    """The model of a checkpoint id, shared across sessions: eval mode, frozen parameters."""
    row = next((m for m in usable_models() if m["id"] == checkpoint_id), None)
    path = Path(row["path"]) if row is not None else checkpoints.find(checkpoint_id)
    if path is None:
        raise checkpoints.CheckpointError(f"no checkpoint {checkpoint_id!r}")
    return _load(str(path), _stamp(path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _test_set(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset(dataset, "test").tensors  # shared read-only; callers index, never write


def test_size(dataset: str) -> int:
    return len(_test_set(dataset)[1])


def test_batch(dataset: str, indices: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images ``(N, C, H, W)`` and labels ``(N,)`` at ``indices`` (copies)."""
    x, y = _test_set(dataset)
    rows = torch.tensor(indices, dtype=torch.long)
    return x[rows].clone(), y[rows].clone()


@st.cache_data(show_spinner=False, max_entries=16)
def gallery(dataset: str, per_class: int = 8) -> dict[int, list[int]]:
    return explore.gallery(_test_set(dataset)[1], per_class=per_class)


@st.cache_data(show_spinner=False, max_entries=64)
def images(dataset: str, indices: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    x, y = test_batch(dataset, indices)
    return x.numpy(), y.tolist()


@st.cache_data(show_spinner=False, max_entries=1024)
def saliency_maps(checkpoint_id: str, dataset: str, indices: tuple[int, ...], method: str) -> np.ndarray:
    """Signed maps ``(N, C, H, W)`` of ``method`` for each digit's predicted class."""
    return explore.saliency_maps(load_model(checkpoint_id), test_batch(dataset, indices)[0], method=method)


def prewarm_maps(ids: list[str], dataset: str, indices: tuple[int, ...], method: str = "input_gradient") -> None:
    """Compute (and cache) the maps of every model a slider can reach, so moving it never waits for a model."""
    for checkpoint_id in ids:
        saliency_maps(checkpoint_id, dataset, indices, method)


def map_figure(rows: dict[str, str], dataset: str, indices: tuple[int, ...], *, method: str = "input_gradient",
               shared_scale: bool = True):
    """``viz_explore.map_grid`` of the digits at ``indices`` for ``rows`` (row title → checkpoint id)."""
    x, y = images(dataset, indices)
    maps = {title: saliency_maps(cid, dataset, indices, method) for title, cid in rows.items()}
    return viz_explore.map_grid(x, maps, shared_scale=shared_scale, column_titles=[str(k) for k in y],
                                cell_px=max(60, min(130, 560 // max(len(indices), 1))))  # fills half a wide page


@st.cache_data(show_spinner=False, max_entries=16)
def showcase_figure(signature: tuple, dataset: str, indices: tuple[int, ...]):
    """The home page's picture: plain vs the best Grad Reg (y) model's input gradients (``viz.saliency_grid``)."""
    pair = explore.showcase(_manifest(signature)[0])
    x, y = test_batch(dataset, indices)
    maps = {f"{e['name']}": torch.from_numpy(saliency_maps(e["id"], dataset, indices, "input_gradient"))
            for e in pair}
    return viz.saliency_grid(maps, x, column_titles=[f"label {k}" for k in y.tolist()])


@st.cache_data(show_spinner=False, max_entries=512)
def attack_panel(checkpoint_id: str, dataset: str, index: int, method: str, eps: float, target: str | int | None,
                 params: tuple, saliency_method: str) -> dict:
    """``explore.attack_panel`` for one model and one test image (``params``: sorted (name, value) pairs)."""
    x, y = test_batch(dataset, (index,))
    return explore.attack_panel(load_model(checkpoint_id), x, y, method=method, eps=eps, target=target,
                                saliency_method=saliency_method, **dict(params))


@st.cache_data(show_spinner=False, max_entries=4096)
def robust_point(checkpoint_id: str, dataset: str, n: int, method: str, eps: float, params: tuple) -> float:
    x, y = test_batch(dataset, tuple(range(n)))
    return robust_accuracy(load_model(checkpoint_id), x, y, method=method, epsilons=[eps], **dict(params))[0]["accuracy"]


@st.cache_data(show_spinner=False, max_entries=256)
def saliency_metrics(checkpoint_id: str, dataset: str, n: int, method: str) -> dict:
    x, y = test_batch(dataset, tuple(range(n)))
    return explore.metrics_row(load_model(checkpoint_id), x, y, method=method)


@st.cache_data(show_spinner=False, max_entries=256)
def randomization(checkpoint_id: str, dataset: str, indices: tuple[int, ...], method: str) -> list[dict]:
    x, y = test_batch(dataset, indices)
    return explore.randomization_records(load_model(checkpoint_id), x, y, method=method)


def randomization_table(ids: list[str], dataset: str, indices: tuple[int, ...], method: str) -> dict[str, list]:
    """Model short name → ``explore.randomization_records`` on the digits at ``indices``."""
    return {short_name(cid): randomization(cid, dataset, indices, method) for cid in ids}


@st.cache_data(show_spinner=False, ttl=600)
def datasets() -> list[dict]:
    return dataset_status()


def common_dataset(ids: list[str]) -> str | None:
    """The dataset all chosen models share, or None."""
    return explore.same_dataset([m for m in usable_models() if m["id"] in ids])


def short_name(checkpoint_id: str) -> str:
    row = next((m for m in usable_models() if m["id"] == checkpoint_id), None)
    return (row["name"] or describe(row)) if row is not None else checkpoint_id


def compare_figures(ids: list[str], methods: list[str], dataset: str, indices: tuple[int, ...], *,
                    shared_scale: bool) -> list:
    """Per digit, a methods × models grid of maps (first column: the digit)."""
    x, _ = images(dataset, indices)
    maps = {m: {short_name(cid): saliency_maps(cid, dataset, indices, m) for cid in ids} for m in methods}
    titles = [f"#{i} (label {k})" for i, k in zip(indices, images(dataset, indices)[1])]
    return [viz_explore.method_grid(x[j], {label(m): {name: a[j] for name, a in row.items()} for m, row in maps.items()},
                                    shared_scale=shared_scale, image_title=titles[j]) for j in range(len(indices))]
