"""The models this server offers, cached by Streamlit: the zoo's manifest, every checkpoint as a row, models loaded
once and shared by every session (frozen, in eval mode), and the datasets on this machine.

The pretrained zoo is read from ``$GRADREG_ZOO_DIR`` (default: the shipped ``checkpoints/``), models trained in the
app go to ``$GRADREG_CHECKPOINT_DIR``. Cache keys are primitives: paths, ids and file stamps.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import streamlit as st
import torch

from gradreg.core.data import dataset_status
from gradreg.lessons import zoo_views
from gradreg.paper.zoo import read_manifest
from gradreg.training import checkpoints
from gradreg.training.checkpoints import zoo_dir  # one reading of $GRADREG_ZOO_DIR, the library's
from gradreg.ui.labels import label


def model_dirs() -> list[tuple[str, str, Path]]:
    """This server's model directories as (what, environment variable, directory), for whoever runs it (the Models &
    data page; the sidebar, which students see, shows no server paths)."""
    return [("Pretrained zoo", "GRADREG_ZOO_DIR", zoo_dir()),
            ("Models trained here", "GRADREG_CHECKPOINT_DIR", checkpoints.user_dir())]


def _stamp(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


def signature() -> tuple:
    """Changes whenever a model directory or the manifest changes, so listings refresh after training."""
    user, zoo = checkpoints.user_dir(), zoo_dir()
    return (str(user), _stamp(user), str(zoo), _stamp(zoo), _stamp(zoo / "manifest.json"))


@st.cache_data(show_spinner=False, max_entries=8)
def zoo_manifest(signature: tuple) -> tuple[dict | None, str]:
    try:
        return read_manifest(signature[2]), ""
    except ValueError as err:
        return None, str(err)


def zoo() -> dict | None:
    """The zoo's manifest, or None when there is none (or it is unreadable)."""
    return zoo_manifest(signature())[0]


def showcase_pair(manifest: dict | None) -> tuple[dict, dict] | None:
    """The zoo's plain model and its showcase Grad Reg (y) model (``zoo_views.showcase``), or None."""
    return zoo_views.showcase(manifest) if manifest else None


def zoo_or_stop() -> dict:
    """The zoo's manifest; otherwise an explanation on the page, and the page stops there."""
    manifest, error = zoo_manifest(signature())
    if error:
        st.error(f"The pretrained zoo cannot be read: {error}")
    if manifest is None or not manifest["models"]:
        st.info(f"No pretrained zoo in `{zoo_dir()}` yet. Build it with `python -m gradreg zoo` (or point "
                "`GRADREG_ZOO_DIR` at one). The Train page works without it.")
        st.stop()
    return manifest


@st.cache_data(show_spinner=False, max_entries=8)
def _catalogue(signature: tuple) -> list[dict]:
    return zoo_views.catalogue(zoo_manifest(signature)[0], signature[2], signature[0])


OPENED = "sweeps.opened"  # session state: checkpoint paths of sweep trials this session opened (Sweeps page)


@st.cache_data(show_spinner=False, max_entries=64)
def _opened_rows(paths: tuple[str, ...], stamps: tuple[int, ...]) -> list[dict]:
    return zoo_views.file_rows([Path(p) for p in paths], source="sweep")


def list_models() -> list[dict]:
    """Every checkpoint in the user and zoo directories as plain dicts (unusable ones with a reason), then the
    sweep models this session opened."""
    rows = _catalogue(signature())
    opened = tuple(p for p in st.session_state.get(OPENED, ()) if p not in {r["path"] for r in rows})
    return rows + (_opened_rows(opened, tuple(_stamp(Path(p)) for p in opened)) if opened else [])


def usable_models(dataset: str | None = None) -> list[dict]:
    return [m for m in list_models() if m["ok"] and (dataset is None or m["dataset"] == dataset)]


def usable_models_or_stop() -> list[dict]:
    """The usable models; when there are none, an explanation on the page, and the page stops there."""
    rows = usable_models()
    if not rows:
        st.info("No models yet: build the zoo (`python -m gradreg zoo`) or train one on the Train page.")
        st.stop()
    return rows


def describe(row: dict) -> str:
    """A short human label for a model row: zoo name or settings, then λ and defence; the user's own models also
    say how long they trained, on how many images, and when (their names are not unique)."""
    if not row.get("ok"):
        return f"{row['path']} (unusable)"
    parts = [row["name"] or row["model"], label(row["regularizer"])]
    if row["regularizer"] != "none":
        parts[-1] += f" λ={row['lam']:g}"
    if row["defence"] != "none":
        parts.append(label(row["defence"]))
    if row["source"] in ("zoo", "sweep"):  # a sweep's trial: a model of a grid, named by its settings
        return " · ".join(p for p in parts if p != "None") + (" (sweep)" if row["source"] == "sweep" else "")
    images = f"{row['n_train']:,} images" if row.get("n_train") else "all images"
    parts += [f"{row['epochs']} epoch{'s' if row['epochs'] != 1 else ''} × {images}", _when(row.get("created", ""))]
    return " · ".join(p for p in parts if p and p != "None") + " (yours)"


def _when(created: str) -> str:
    """``2026-12-04T20:55:33+00:00`` → ``04 Dec 20:55 UTC`` ("" when unknown or unreadable)."""
    try:
        stamp = datetime.fromisoformat(created).astimezone(timezone.utc)
    except ValueError:
        return ""
    return f"{stamp:%d %b %H:%M} UTC"


def model_labels(rows: list[dict]) -> dict[str, str]:
    """Checkpoint id → ``describe`` label, unique: labels that still coincide get the id's hash appended."""
    labels = {row["id"]: describe(row) for row in rows}
    counts = Counter(labels.values())
    return {cid: f"{text} [{cid.rsplit('-', 1)[-1]}]" if counts[text] > 1 else text for cid, text in labels.items()}


def delete_user_model(checkpoint_id: str) -> Path:
    """Delete one of the user's own trained models (never a zoo model) and forget it in the listing and the model
    cache; returns the deleted path. ``CheckpointError`` when it is not one of the user's models."""
    row = next((m for m in list_models() if m["id"] == checkpoint_id and m["source"] == "user"), None)
    if row is None:
        raise checkpoints.CheckpointError(f"{checkpoint_id!r} is not one of your trained models (the zoo's are "
                                          "never deleted)")
    path = Path(row["path"])
    if path.resolve().parent == zoo_dir().resolve():
        raise checkpoints.CheckpointError(f"{path} is in the zoo's directory; the zoo's models are never deleted")
    stamp = _stamp(path)
    deleted = checkpoints.delete(checkpoint_id, root=path.parent)
    _load.clear(str(path), stamp)
    _catalogue.clear()
    return deleted


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


def load_listed() -> int:
    """Load every usable model of the zoo and the user's folder into the shared cache (the warm start; no session
    state read); returns how many."""
    rows = [row for row in _catalogue(signature()) if row["ok"]]
    for row in rows:
        _load(row["path"], _stamp(Path(row["path"])))
    return len(rows)


@st.cache_data(show_spinner=False, ttl=600)
def datasets() -> list[dict]:
    return dataset_status()


def common_dataset(ids: list[str]) -> str | None:
    """The dataset all chosen models share, or None."""
    return zoo_views.same_dataset([m for m in usable_models() if m["id"] in ids])


def short_name(checkpoint_id: str) -> str:
    row = next((m for m in usable_models() if m["id"] == checkpoint_id), None)
    return (row["name"] or describe(row)) if row is not None else checkpoint_id
