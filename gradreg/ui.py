"""Streamlit glue, the only gradreg module that imports streamlit: cached loaders and computations keyed by
primitives (ids, numbers), human labels, the page frame, shared widgets that return plain values, and training runs
in a background thread with a live panel. Everything that needs no Streamlit lives in ``gradreg.explore``.

Models cached here are shared by every session and thread, so they are frozen and in eval mode. The pretrained zoo
is read from ``$GRADREG_ZOO_DIR`` (default: the shipped ``checkpoints/``), models trained in the app go to
``$GRADREG_CHECKPOINT_DIR``.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st
import torch

from gradreg import checkpoints, explore, urlstate, viz, viz_explore
from gradreg.attacks import ATTACKS, NORMS
from gradreg.config import ACTIVATIONS, DEFENCES, RECIPES, TrainConfig, config_id, with_recipe
from gradreg.data import CorruptDataset, DatasetUnavailable, dataset_status, load_dataset
from gradreg.evaluate import robust_accuracy
from gradreg.limits import check_knobs, check_limit, limit, problems
from gradreg.models import DEFAULT_MODEL, MODELS
from gradreg.regularizers import REGULARIZERS
from gradreg.saliency import SALIENCY_METHODS
from gradreg.train import estimate_seconds
from gradreg.zoo import read_manifest

# Several sessions and a training thread share 2 cores: torch's default of one intra-op thread per core made a
# PGD 40–200× slower under load (spinning OpenMP workers); one thread each keeps every panel responsive.
torch.set_num_threads(int(os.environ.get("GRADREG_UI_THREADS", "1")))

LABELS = {
    "none": "None", "grad_y": "Grad Reg (y)", "grad_uniform": "Grad Reg (1/K)", "grad_fd": "Grad Reg (finite diff.)",
    "fgsm_at": "FGSM adv. training", "pgd_at": "PGD adv. training", "distill": "Defensive distillation",
    "fgsm": "FGSM", "tgsm": "TGSM (targeted)", "iterated_tgsm": "Iterated TGSM (targeted, unbounded)",
    "bim": "BIM", "pgd": "PGD", "jsma": "JSMA (targeted)", "square": "Square (gradient-free)",
    "apgd": "APGD (Auto-PGD)", "apgd_t": "APGD-T (targeted DLR, picks its targets)",
    "ensemble": "AutoAttack ensemble (APGD-CE, APGD-T, Square)",
    "input_gradient": "Input gradient ∇ₓ log p", "loss_gradient": "Loss gradient ∇ₓ CE",
    "sum_log_prob_gradient": "∇ₓ Σ log p (1/K view)", "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad", "input_x_gradient": "Input × Gradient", "guided_backprop": "Guided Backprop",
    "deeplift": "DeepLIFT", "occlusion": "Occlusion", "gradcam": "Grad-CAM",
    "authors": "The authors' (Xavier init, no BatchNorm γ, Adam ε 1e-4)", "torch": "PyTorch's defaults",
    "next": "next class (y + 1) mod K", "least_likely": "least likely class", "random": "random other class",
}


def enter_page(page=None) -> None:
    """Called by ``app.py`` right before it runs the chosen ``page`` (see ``routed``; ``share`` forgets the previous
    page's URL state when the page changed)."""
    st.session_state["app.routed"] = True
    st.session_state["url.prefixes"] = None  # set again by the page's ``share``
    if page is not None and st.session_state.get("url.page") != page.url_path:
        st.session_state["url.page"] = page.url_path
        for name in ("url.written", "url.base", "url.link", "url.applied"):
            st.session_state.pop(name, None)


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


def within_limits(**requested: int) -> None:
    """Refuse a page's request over this server's caps (``gradreg.limits``: ``images=``, ``attack_steps=``,
    ``queries=``…) with an ``st.error`` naming the variable, and stop the page."""
    with failures("This request", stop=True):
        for name, value in requested.items():
            check_limit(name, int(value))


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


def usable_models_or_stop() -> list[dict]:
    """The usable models; when there are none, an explanation on the page, and the page stops there."""
    rows = usable_models()
    if not rows:
        st.info("No models yet: build the zoo (`python -m gradreg zoo`) or train one on the Train page.")
        st.stop()
    return rows


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
    return viz.saliency_grid(maps, x, shared_scale=False, column_titles=[f"label {k}" for k in y.tolist()])


@st.cache_data(show_spinner=False, max_entries=512)
def attack_panel(checkpoint_id: str, dataset: str, index: int, method: str, eps: float, target: str | int | None,
                 params: tuple, saliency_method: str) -> dict:
    """``explore.attack_panel`` for one model and one test image (``params``: sorted (name, value) pairs)."""
    check_knobs(dict(params))  # the server's caps (gradreg.limits): LimitError, shown by ``failures``
    x, y = test_batch(dataset, (index,))
    return explore.attack_panel(load_model(checkpoint_id), x, y, method=method, eps=eps, target=target,
                                saliency_method=saliency_method, **dict(params))


@st.cache_data(show_spinner=False, max_entries=4096)
def robust_point(checkpoint_id: str, dataset: str, n: int, method: str, eps: float, params: tuple) -> float:
    check_limit("images", n)
    check_knobs(dict(params))
    x, y = test_batch(dataset, tuple(range(n)))
    return robust_accuracy(load_model(checkpoint_id), x, y, method=method, epsilons=[eps], **dict(params))[0]["accuracy"]


@st.cache_data(show_spinner=False, max_entries=256)
def saliency_metrics(checkpoint_id: str, dataset: str, n: int, method: str) -> dict:
    check_limit("images", n)
    x, y = test_batch(dataset, tuple(range(n)))
    return explore.metrics_row(load_model(checkpoint_id), x, y, method=method)


@st.cache_data(show_spinner=False, max_entries=256)
def randomization(checkpoint_id: str, dataset: str, indices: tuple[int, ...], method: str) -> list[dict]:
    check_limit("images", len(indices))
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


# Shared widgets: each draws its widgets and returns plain values.


def show_models(rows: list[dict], *, height: int | None = None) -> None:
    """A table of models: label, where it comes from, test accuracy, and the card's FGSM accuracy at ε = 0.1."""
    table = [{"model": describe(m), "source": m["source"], "test accuracy": m["test_accuracy"],
              "FGSM ε=0.1": explore.card_values(m["card"], 0.1)["fgsm"] if m["card"] else None,
              "epochs": m["epochs"], "dataset": m["dataset"], "id": m["id"]} for m in rows]
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(table, width="stretch", hide_index=True, height=height or "auto",
                 column_config={"test accuracy": percent, "FGSM ε=0.1": percent})


def accuracy_curves(ids: list[str], dataset: str, n: int, method: str, epsilons: list[float], params: tuple) -> list:
    """Accuracy of each model under ``method`` on the first ``n`` test images at each ε, with a progress bar;
    every point is cached on its own, so adding a model or an ε computes only what is new."""
    check_limit("images", n)  # before any cache lookup: the same request is refused on every server state
    check_knobs(dict(params))
    bar, records, total = st.progress(0.0, text="accuracy vs ε"), [], len(ids) * len(epsilons)
    names = {m["id"]: describe(m) for m in usable_models()}
    for i, cid in enumerate(ids):
        for j, eps in enumerate(epsilons):
            records.append({"model": names.get(cid, cid), "eps": eps,
                            "accuracy": robust_point(cid, dataset, n, method, eps, params)})
            bar.progress((i * len(epsilons) + j + 1) / total, text=f"{names.get(cid, cid)} · ε = {eps:g}")
    bar.empty()
    return records


def model_picker(key: str, *, dataset: str | None = None, default: list[str] = (), max_selections: int = 6,
                 label_text: str = "Models") -> list[str]:
    """A multiselect of usable models (of ``dataset``, if given); returns checkpoint ids."""
    rows = usable_models(dataset)
    names = {m["id"]: describe(m) for m in rows}
    chosen = [cid for cid in default if cid in names][:max_selections]
    picked = st.session_state.get(f"{key}.models")  # from a link: keep the usable ones, at most max_selections
    if picked is not None and picked != (kept := [cid for cid in picked if cid in names][:max_selections]):
        st.session_state[f"{key}.models"] = kept
    return st.multiselect(label_text, list(names), default=chosen, format_func=names.get,
                          max_selections=max_selections, key=f"{key}.models")


def image_picker(key: str, dataset: str) -> int:
    """One test image: from a per-class gallery of thumbnails, or by index; returns the test index."""
    classes = gallery(dataset)
    mode = st.segmented_control("Choose the image", ["gallery", "index"], default="gallery", required=True,
                                key=f"{key}.mode", format_func=str.capitalize)
    if mode == "index":
        return int(st.number_input("Test index", 0, test_size(dataset) - 1, 0, key=f"{key}.index"))
    digit = st.segmented_control("Class", list(classes), default=next(iter(classes)), required=True,
                                 key=f"{key}.class")
    choices = classes[digit]
    x, _ = images(dataset, tuple(choices))
    st.image(explore.thumbnail_strip(x), width="stretch")
    position = st.segmented_control("Example", list(range(len(choices))), default=0, required=True,
                                    format_func=lambda i: f"#{i + 1}", key=f"{key}.example")
    return choices[position]


def digits_picker(key: str, dataset: str, *, default_classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> tuple[int, ...]:
    """Several digits: the ``example``-th test image of each chosen class; returns test indices."""
    classes = gallery(dataset)
    left, right = st.columns([4, 1])
    chosen = left.pills("Digits (one per class)", list(classes), selection_mode="multi", key=f"{key}.classes",
                        default=[k for k in default_classes if k in classes])
    example = right.number_input("Example #", 1, min(len(v) for v in classes.values()), 1, key=f"{key}.example")
    return tuple(classes[k][example - 1] for k in sorted(chosen))


def attack_controls(key: str) -> dict:
    """Attack, ε, target, the attack's own knobs and the saliency method shown; returns ``{"method", "eps", "target",
    "saliency", "params"}`` with ``params`` as sorted (name, value) pairs (a cache key)."""
    left, middle, right, last = st.columns([2, 3, 2, 2])
    method = left.selectbox("Attack", list(ATTACKS), format_func=label, key=f"{key}.method")
    saliency = last.selectbox("Saliency method", saliency_methods(), format_func=label, key=f"{key}.saliency")
    spec, params = ATTACKS[method], {}
    with st.expander(f"{label(method)} settings") if advanced() else nullcontext():
        for name, default in spec.params.items():
            params[name] = _knob(f"{key}.{method}.{name}", name, default)
    norm = params.get("norm", spec.norm)
    title, high, value, step = explore.eps_range(method, norm)
    eps = middle.slider(title, 0.0, high, value, step=step, key=f"{key}.eps.{method}.{norm}")
    target = None
    if spec.targeted:
        target = right.selectbox("Target", [*explore.TARGET_NAMES, *range(10)], format_func=
                                 lambda t: label(t) if isinstance(t, str) else f"class {t}", key=f"{key}.target")
    return {"method": method, "eps": float(eps), "target": target, "saliency": saliency,
            "params": tuple(sorted((k, v) for k, v in params.items() if v is not None))}


def _knob(key: str, name: str, default: object) -> object:
    """One attack knob as a widget chosen by its default's type (None: automatic, not shown); in teacher mode no
    widget, the link's value or the default."""
    if not advanced():
        return st.session_state.get(key, default)
    if name == "norm":
        return st.selectbox("Norm", NORMS, index=NORMS.index(default), key=key)
    if isinstance(default, bool):
        return st.checkbox(name.replace("_", " "), value=default, key=key)
    if isinstance(default, int):
        return int(st.number_input(name, 1, max(default, urlstate.knob_limit(name)), default, key=key))
    if isinstance(default, float):
        return float(st.number_input(name, 0.0, 1.0, default, step=0.01, key=key))
    return None


CARD_METRICS = (("clean", "Clean accuracy"), ("fgsm", "FGSM white-box"), ("pgd", "PGD white-box"),
                ("transfer_fgsm", "FGSM from plain"), ("grad_norm", "Mean ‖∇ₓ CE‖₂"), ("max_prob", "Confidence"))


def card_metrics(values: dict, reference: dict | None) -> None:
    """One ``st.metric`` per card number, with the difference to the plain model."""
    for column, (key, title) in zip(st.columns(len(CARD_METRICS)), CARD_METRICS):
        value, base = values.get(key), (reference or {}).get(key)
        if value is None:
            column.metric(title, "n/a")
        elif key == "grad_norm":
            ratio = f"×{value / base:.2g} vs plain" if base else None
            column.metric(title, f"{value:.3g}", ratio, delta_color="off", help="Mean input-gradient norm")
        else:
            delta = f"{(value - base) * 100:+.1f} pts vs plain" if base is not None else None
            confidence = key == "max_prob"  # lower is not worse: the paper's GR models are less over-confident
            column.metric(title, f"{value:.1%}", delta, delta_color="off" if confidence else "normal",
                          help="Mean max probability" if confidence else None)


def metrics_table(ids: list[str], methods: list[str], dataset: str, n: int) -> list[dict]:
    """Saliency metrics per (model, method) on the first ``n`` test images, with a progress bar."""
    bar, records = st.progress(0.0, text="saliency metrics"), []
    pairs = [(cid, m) for cid in ids for m in methods]
    for i, (cid, method) in enumerate(pairs):
        bar.progress(i / len(pairs), text=f"{short_name(cid)} · {label(method)}")
        values = saliency_metrics(cid, dataset, n, method)
        records.append({"model": short_name(cid), "method": label(method),
                        **{k.replace("_", " "): float(f"{v:.3g}") for k, v in values.items()}})
    bar.empty()
    return records


# Training in the app: the settings form, background runs and their live panel.
def max_train_seconds() -> float:
    """The longest training the app accepts (``$GRADREG_MAX_TRAIN_SECONDS``, default 10 minutes)."""
    return float(os.environ.get("GRADREG_MAX_TRAIN_SECONDS", 600))


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
        lam = middle.number_input("λ_eff (per-example mean)", 0.0, 1e4, explore.AUTHORS_LAMBDAS["grad_y"], format="%g",
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
    estimate = estimate_seconds(config)
    if estimate > max_train_seconds():
        st.error(f"This would take about {estimate / 60:.0f} min on this machine; the limit is "
                 f"{max_train_seconds() / 60:.0f} min. Use fewer epochs or training images.")
        return None
    return config


@st.cache_resource(show_spinner=False)
def _jobs() -> dict[str, explore.TrainingJob]:
    return {}  # checkpoint id → job, shared by all sessions: one machine, one training at a time


def start_training(config: TrainConfig) -> str:
    """Start ``config`` in the background unless it exists already or another run is busy; returns a message."""
    cid = config_id(config)
    existing = next((m for m in usable_models() if m["id"] == cid and m["complete"]), None)
    if existing is not None:
        return f"Already trained: `{cid}` is loaded instead of retraining."
    if config.epochs > limit("epochs"):
        return f"{config.epochs} epochs is over this server's limit of {limit('epochs')} ($GRADREG_MAX_EPOCHS)."
    busy = [job for job in _jobs().values() if job.snapshot()["state"] == "running"]
    if len(busy) >= limit("trainings"):  # $GRADREG_MAX_TRAININGS runs at once (default 1: 2 cores, many users)
        return (f"Another run is in progress (`{busy[0].id}`; this server allows {limit('trainings')} at a time); "
                "stop it or wait for it to finish.")
    _jobs()[cid] = explore.TrainingJob(config, root=checkpoints.user_dir()).start()
    st.session_state["train.job"] = cid
    return f"Started `{cid}` (about {estimate_seconds(config):.0f} s)."


def training_job() -> dict | None:
    """A snapshot of this session's training run (else of any running one), or None."""
    jobs = _jobs()
    job = jobs.get(st.session_state.get("train.job", ""))
    job = job or next((j for j in jobs.values() if j.snapshot()["state"] == "running"), None)
    return job.snapshot() if job is not None else None


def stop_training(checkpoint_id: str) -> None:
    job = _jobs().get(checkpoint_id)
    if job is not None:
        job.stop()


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
        running = job["running"]
        text = f"{job['phase'] or 'train'} · batch {job['batch']}/{job['batches']}"
        if running:
            text += f" · loss {running['loss']:.3f} · accuracy {running['accuracy']:.3f}"
        st.progress(explore.progress(job), text=text)
        if job["epochs"]:
            st.plotly_chart(viz_explore.training_curves(job["epochs"]), width="stretch", key="train.curves")
        if state == "running":
            st.button("Stop", key="train.stop", on_click=stop_training, args=(job["id"],), icon=":material/stop:")
        elif state == "done":
            st.success(f"Test accuracy {job['result']['test_accuracy']:.2%}. The model is saved and listed on "
                       "every page.")
        elif state == "stopped":
            st.warning("Stopped before the end: nothing was saved.")
        else:
            st.error(f"Training failed: {job['error']}")


def sidebar_status() -> None:
    """Where the models come from, a running training's progress, and misconfigured caps (``gradreg.limits``: their
    defaults apply), on every page."""
    for problem in problems():
        st.sidebar.warning(f"Server limit ignored: {problem}")
    job = training_job()
    if job is not None and job["state"] == "running":
        st.sidebar.progress(explore.progress(job), text=f"Training `{job['id']}`")
    st.sidebar.caption(f"Zoo: `{zoo_dir()}` · your models: `{checkpoints.user_dir()}`")


# Shareable views: a page's selections live in its URL (``gradreg.urlstate`` says how values are spelled).
def _url() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def share(*prefixes: str) -> None:
    """Keep this page's widget values under ``prefixes`` (whole keys, or prefixes ending in '.') in its URL.

    Call it before the widgets. When the URL's values differ from what this session last wrote (a first visit, a
    pasted or preset link, the back button), they go into ``st.session_state``, where the widgets pick them up; a
    value that does not decode is dropped and named in one warning at this spot. ``sync_url`` (at the end of every
    run, and of every ``fragment`` rerun) writes the values back: those from the link, and those changed since the
    page opened, so an untouched page keeps a clean URL and an unchanged view an unchanged URL. A run that ends in
    ``st.stop()`` cannot send anything more, so its URL stays as it was, and that URL is not applied again.
    """
    state, link = st.session_state, {k: v for k, v in _url().items() if urlstate.owned(k, prefixes)}
    state["url.prefixes"], state["url.slot"] = prefixes, st.empty()
    state.pop("url.check", None)  # left by a run that stopped before its widgets could take the link's values
    if link != state.get("url.written"):
        names = {m["id"]: m["name"] or m["id"] for m in usable_models()}
        values, state["url.errors"] = urlstate.read(link, models={**{n: i for i, n in names.items()},
                                                                  **{i: i for i in names}})
        state.update(values)
        state["url.link"], state["url.applied"], state["url.check"], state["url.written"] = link, values, values, link
        if state["url.errors"]:
            state["url.slot"].warning("Ignored from the link: " + "; ".join(state["url.errors"]),
                                      icon=":material/link_off:")


def sync_url(*, final: bool = False) -> None:
    """Write the shared values to the URL (see ``share``); other parameters go, ``?teacher=1`` stays. ``final``
    (``app.py``, after a page ran to its end): also warn about link values the page's widgets refused."""
    state, prefixes = st.session_state, st.session_state.get("url.prefixes")
    if prefixes is None:  # a page that shares nothing keeps its URL
        return
    names = {m["id"]: m["name"] for m in usable_models() if m["name"]}
    link, applied, base = state.get("url.link", {}), state.get("url.applied", {}), state.setdefault("url.base", {})
    check, errors = (state.pop("url.check", {}), state.pop("url.errors", [])) if final else ({}, [])
    refused = [k for k, v in check.items() if k in state and state[k] != v]  # the page's widget did not take it
    for key in refused:
        errors.append(f"{key}={','.join(link[key])} is not offered here")
        del applied[key]
        base[key] = urlstate.encode(key, state[key], names=names)  # what the widget fell back to: its default
    if refused:
        state["url.slot"].warning("Ignored from the link: " + "; ".join(errors), icon=":material/link_off:")
    values = {k: state[k] for k in state.keys() if urlstate.owned(k, prefixes) and urlstate.field(k)}
    wanted = urlstate.view_params(values, link=link, applied=applied, base=base, names=names)
    url = wanted | ({} if advanced() else {urlstate.TEACHER: ["1"]})
    if url != _url():
        st.query_params.from_dict(url)
    state["url.written"] = wanted


def fragment(func):
    """``st.fragment`` that also writes the shared values to the URL after each rerun (a fragment's rerun skips
    ``app.py``, where the full runs call ``sync_url``)."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        result = func(*args, **kwargs)
        sync_url()
        return result
    return st.fragment(run)


def advanced() -> bool:
    """False in teacher mode: ``?teacher=1`` in the URL (or the sidebar's lock), kept for the session. Pages hide
    their advanced controls then; the values still come from the link. A class view, not a security boundary."""
    if urlstate.teacher(_url()):
        st.session_state["url.locked"] = True
    return not st.session_state.get("url.locked", False)


def teaching_box() -> None:
    """The sidebar's note on sharing: the address bar is the view; a button locks it for a class."""
    if not advanced():
        st.sidebar.info("**Teacher mode: controls locked.** Copy the address bar to hand out this view; open it "
                        f"without `{urlstate.TEACHER}=1` to unlock.", icon=":material/lock:")
        return
    with st.sidebar.expander("Share or teach this view", icon=":material/share:"):
        st.caption("The address bar holds this page's settings: copy it to share the view, or open a lesson "
                   "preset from Home. Locking hides the advanced controls and adds `teacher=1` to the address.")
        st.button("Lock for a class", key="url.lock", icon=":material/lock:",
                  on_click=lambda: st.session_state.update({"url.locked": True}))
