"""Sweeps on the dashboard: the results folders this server can read, their tables (cached by file stamp), and a
trial opened in the Attack lab. Reading never starts Ray nor trains anything.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gradreg.sweeps.results import RESULTS, read_results, result_folders
from gradreg.sweeps.runner import sweeps_root
from gradreg.ui.catalogue import OPENED, usable_models, zoo_dir


def sweep_folders() -> list[Path]:
    """Folders with a results table: the zoo's (every zoo build is a sweep), then every sweep under the sweeps root
    (``$GRADREG_SWEEP_DIR``, default ``~/.cache/gradreg/sweeps``)."""
    return result_folders([zoo_dir(), sweeps_root()])


@st.cache_data(show_spinner=False, max_entries=16)
def _results(folder: str, stamp: int) -> tuple[list[dict], str]:
    try:
        return read_results(folder), ""
    except (ValueError, OSError) as err:
        return [], str(err)


def sweep_results(folder: str | Path) -> tuple[list[dict], str]:
    """The rows of ``folder``'s results table and "" — or no rows and why they cannot be read."""
    path = Path(folder) / RESULTS
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _results(str(folder), stamp)


def open_in_attack_lab(folder: str | Path, row: dict, reference: dict | None) -> None:
    """Switch to the Attack lab with ``row``'s model (and its reference, the plain model it is compared with)
    chosen; a sweep's model that the server does not list yet is added to this session's models first."""
    known = {m["id"] for m in usable_models()}
    chosen = [r for r in (reference, row) if r is not None]
    for r in chosen:
        if r["id"] not in known:
            path = Path(r["checkpoint"]) if Path(r["checkpoint"]).is_absolute() else Path(folder) / r["checkpoint"]
            st.session_state[OPENED] = tuple(sorted({*st.session_state.get(OPENED, ()), str(path)}))
    st.switch_page("pages/attack_lab.py", query_params={"attack.models": [r["id"] for r in chosen]})


KINDS = {  # label → (column prefix, an ε suffix?, accuracy in [0, 1]?, help)
    "Clean accuracy": ("clean", False, True, "on the sweep's card images (the first n test images); higher is better"),
    "Test accuracy": ("test_accuracy", False, True, "on the whole test set, stored with the model; higher is better"),
    "FGSM accuracy": ("fgsm", True, True, "white-box FGSM on the model itself, card images; higher is more robust"),
    "PGD accuracy": ("pgd", True, True, "white-box PGD (20 steps) on the model itself, card images; higher is more "
                     "robust, and it is the stronger attack"),
    "Transferred FGSM accuracy": ("transfer_fgsm", True, True, "FGSM crafted on the sweep's reference (plain) model, "
                                  "card images; higher is better"),
    "Mean ‖∇ₓ CE‖₂": ("grad_norm", False, False, "mean input-gradient norm of the loss on the card images; the "
                      "penalty pushes it down, but a confident plain model has tiny gradients on points it gets right"),
    "Training seconds": ("train_seconds", False, False, "wall-clock training time, where the trial ran"),
}


def _epsilons(columns: set[str], prefix: str) -> list[float]:
    """The ε of the columns ``<prefix>_<ε>`` (``pgd_0.1``…), sorted; ``transfer_fgsm_0.1`` is not ``fgsm``'s."""
    tails = (c[len(prefix) + 1:] for c in columns if c.startswith(prefix + "_"))
    return sorted({float(t) for t in tails if t[:1].isdigit()})


def metric_picker(rows: list[dict], key: str) -> tuple[str, str, bool]:
    """Pick a quantity (and ε for attacks) among the columns ``rows`` hold; returns (column, label, percent)."""
    columns = {k for row in rows for k in row}
    kinds = [k for k, (prefix, eps, _, _) in KINDS.items()
             if (_epsilons(columns, prefix) if eps else prefix in columns)]
    kind = st.selectbox("Quantity", kinds, key=f"{key}.kind", help="; ".join(f"**{k}**: {KINDS[k][3]}" for k in kinds))
    prefix, has_eps, percent, _ = KINDS[kind]
    if not has_eps:
        return prefix, kind, percent
    epsilons = _epsilons(columns, prefix)
    eps = st.select_slider("ε (L∞, pixel units)", epsilons, value=min(epsilons, key=lambda e: abs(e - 0.1)),
                           format_func=lambda e: f"{e:g}", key=f"{key}.eps")
    return f"{prefix}_{eps:g}", f"{kind} at ε {eps:g}", percent


def folder_label(folder: Path) -> str:
    """A results folder as students may see it: the zoo's by name, a sweep's by its folder name (no server paths)."""
    zoo = zoo_dir().resolve()
    resolved = Path(folder).resolve()
    if resolved == zoo:
        return "the shipped zoo (MNIST)"
    if resolved.parent == zoo:
        return f"the shipped zoo ({resolved.name})"
    return f"sweep: {resolved.name}"
