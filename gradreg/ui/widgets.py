"""Shared widgets: each draws its widgets and returns plain values (checkpoint ids, test indices, attack settings),
or draws a shared table or row of metrics.
"""

from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from gradreg.attacks import ATTACKS, NORMS, TARGETS
from gradreg.lessons import panels, zoo_views
from gradreg.training.checkpoints import CheckpointError
from gradreg.ui import urlstate
from gradreg.ui.catalogue import delete_user_model, model_labels, usable_models
from gradreg.ui.compute import gallery, images, saliency_methods, test_size
from gradreg.ui.labels import label
from gradreg.ui.share import advanced


TEST_ACCURACY = "test accuracy (all test images)"


def show_models(rows: list[dict], *, height: int | None = None) -> None:
    """A table of models: label, where it comes from, test accuracy, and the card's FGSM accuracy at ε = 0.1."""
    names = model_labels(rows)
    sizes = sorted({m["card"]["n"] for m in rows if m["card"]})
    fgsm = f"FGSM ε=0.1 (first {sizes[0]} test images)" if len(sizes) == 1 else "FGSM ε=0.1 (card's test images)"
    table = [{"model": names[m["id"]], "source": m["source"], TEST_ACCURACY: m["test_accuracy"],
              fgsm: zoo_views.card_values(m["card"], 0.1)["fgsm"] if m["card"] else None,
              "epochs": m["epochs"], "training images": m["n_train"], "dataset": m["dataset"], "id": m["id"]}
             for m in rows]
    fgsm_help = ("White-box FGSM accuracy at ε = 0.1 from the zoo's card (its first test images). Your own models "
                 "have no card: attack them in the Attack lab.")
    st.dataframe(table, width="stretch", hide_index=True, height=height or "auto", column_config={
        TEST_ACCURACY: st.column_config.NumberColumn(format="percent", help="On the whole test set, as stored with "
                                                     "the model (the cards' clean accuracy uses their first images)."),
        fgsm: st.column_config.NumberColumn(format="percent", help=fgsm_help),
        "training images": st.column_config.NumberColumn(help="Empty: the whole training split.")})


def delete_own_model(rows: list[dict], *, key: str = "models.delete") -> None:
    """Delete one of the user's own trained models after a confirmation; the zoo's are never offered. Hidden in
    teacher mode (a class shares the server's models)."""
    if not advanced():
        return
    if outcome := st.session_state.pop(f"{key}.outcome", None):  # set by the confirmation's callback
        (st.success if outcome[0] == "deleted" else st.error)(outcome[1])
    names = model_labels([m for m in rows if m["ok"] and m["source"] == "user"])
    if not names:
        return
    with st.expander("Delete one of your trained models", icon=":material/delete:"):
        chosen = st.selectbox("Your model", list(names), format_func=names.get, key=f"{key}.id")
        if st.session_state.get(f"{key}.pending") != chosen:
            st.button("Delete…", key=f"{key}.ask", on_click=_ask, args=(key, chosen))
            return
        st.warning(f"Delete **{names[chosen]}** (`{chosen}`)? Its file is removed from this server for every user "
                   "and cannot be restored; the pretrained zoo is not affected.")
        yes, no = st.columns(2)
        yes.button("Yes, delete it", type="primary", key=f"{key}.yes", on_click=_delete,
                   args=(key, chosen, names[chosen]))
        no.button("Cancel", key=f"{key}.no", on_click=_ask, args=(key, None))


def _ask(key: str, checkpoint_id: str | None) -> None:
    st.session_state[f"{key}.pending"] = checkpoint_id


def _delete(key: str, checkpoint_id: str, name: str) -> None:
    st.session_state[f"{key}.pending"] = None
    try:
        delete_user_model(checkpoint_id)
    except CheckpointError as err:
        st.session_state[f"{key}.outcome"] = ("failed", f"Not deleted: {err}")
        return
    st.session_state[f"{key}.outcome"] = ("deleted", f"Deleted {name}.")


def model_picker(key: str, *, dataset: str | None = None, default: list[str] = (), max_selections: int = 6,
                 label_text: str = "Models") -> list[str]:
    """A multiselect of usable models (of ``dataset``, if given); returns checkpoint ids."""
    names = model_labels(usable_models(dataset))
    chosen = [cid for cid in default if cid in names][:max_selections]
    picked = st.session_state.get(f"{key}.models")  # from a link: keep the usable ones, at most max_selections
    if picked is not None and picked != (kept := [cid for cid in picked if cid in names][:max_selections]):
        st.session_state[f"{key}.models"] = kept
    return st.multiselect(label_text, list(names), default=_unless_set(f"{key}.models", chosen), format_func=names.get,
                          max_selections=max_selections, key=f"{key}.models")


def image_picker(key: str, dataset: str, *, default: int | None = None) -> int:
    """One test image: from a per-class gallery of thumbnails, or by index; returns the test index. The widgets
    open on test image ``default`` (its class and example in the gallery, else by index) when given."""
    classes = gallery(dataset)
    where = next(((k, v.index(default)) for k, v in classes.items() if default in v), None)
    mode = st.segmented_control("Choose the image", ["gallery", "index"], required=True, key=f"{key}.mode",
                                default=_unless_set(f"{key}.mode", "index" if default is not None and where is None
                                                    else "gallery"), format_func=str.capitalize)
    if mode == "index":
        return int(st.number_input("Test index", 0, test_size(dataset) - 1, default or 0, key=f"{key}.index"))
    digit = st.segmented_control("Class", list(classes), required=True, key=f"{key}.class",
                                 default=_unless_set(f"{key}.class", where[0] if where else next(iter(classes))))
    choices = classes[digit]
    x, _ = images(dataset, tuple(choices))
    st.image(panels.thumbnail_strip(x), width="stretch")
    first = where[1] if where and where[0] == digit else 0
    position = st.segmented_control("Example", list(range(len(choices))), required=True, key=f"{key}.example",
                                    default=_unless_set(f"{key}.example", first), format_func=lambda i: f"#{i + 1}")
    return choices[position]


def _unless_set(key: str, default):
    """A widget's default, or None when the state holds its value already (a link's): Streamlit warns about a
    widget given both."""
    return None if key in st.session_state else default


def digits_picker(key: str, dataset: str, *, default_classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> tuple[int, ...]:
    """Several digits: the ``example``-th test image of each chosen class; returns test indices."""
    classes = gallery(dataset)
    left, right = st.columns([4, 1])
    chosen = left.pills("Digits (one per class)", list(classes), selection_mode="multi", key=f"{key}.classes",
                        default=[k for k in default_classes if k in classes])
    example = right.number_input("Example #", 1, min(len(v) for v in classes.values()), 1, key=f"{key}.example")
    return tuple(classes[k][example - 1] for k in sorted(chosen))


def attack_controls(key: str, *, eps: float | None = None) -> dict:
    """Attack, its size (ε, or the step size or θ of attacks without a radius: one slider labelled by
    ``panels.size_range``; ``eps``: the L∞ sliders' default instead), target, the attack's other knobs and the
    saliency method shown; returns ``{"method",
    "size", "target", "saliency", "params"}`` with ``params`` as sorted (name, value) pairs (a cache key)."""
    left, middle, right, last = st.columns([2, 3, 2, 2])
    method = left.selectbox("Attack", list(ATTACKS), format_func=label, key=f"{key}.method")
    saliency = last.selectbox("Saliency method", saliency_methods(), format_func=label, key=f"{key}.saliency")
    spec, params = ATTACKS[method], {}
    with st.expander(f"{label(method)} settings") if advanced() else nullcontext():
        for name, default in spec.params.items():
            if name != spec.size:  # the size has the slider
                params[name] = _knob(f"{key}.{method}.{name}", name, default)
    norm = params.get("norm", spec.norm)
    title, high, value, step = panels.size_range(method, norm)
    value = eps if eps is not None and spec.size == "eps" and norm == "linf" else value  # the page's lesson ε
    size = middle.slider(title, 0.0, high, _unless_set(f"{key}.eps.{method}.{norm}", value), step=step,
                         key=f"{key}.eps.{method}.{norm}")  # key: shared links
    target = None
    if spec.targeted:
        target = right.selectbox("Target", [*TARGETS, *range(10)], format_func=
                                 lambda t: label(t) if isinstance(t, str) else f"class {t}", key=f"{key}.target")
    return {"method": method, "size": float(size), "target": target, "saliency": saliency,
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


def strong_attack_table(dataset: str, names: dict[str, str], *, key: str) -> bool:
    """The report's strong-attack table (``python -m gradreg robustness``) for the paper roles in ``names``
    (role → the name shown); returns False, showing nothing, when the report has no such table."""
    rows = zoo_views.strong_attack_rows(dataset, list(names))
    if not rows:
        return False
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe([{"model": names[r["model"]], "ε": r["eps"], **{k: r[k] for k in ("clean", "fgsm", "pgd",
                  "ensemble")}} for r in rows], hide_index=True, width="stretch", key=key,
                 column_config={k: percent for k in ("clean", "fgsm", "pgd", "ensemble")})
    how = rows[0]
    st.caption(f"From the report (`reports/{dataset}/REPORT.md`, section “Robustness under a strong ensemble”, first "
               f"{how['n']} test images): white-box FGSM, PGD-{how['pgd_steps']} with {how['restarts']} random "
               f"start(s) and the AutoAttack-style ensemble (APGD-CE, APGD-T, Square with {how['queries']} queries). "
               "A model far more accurate under FGSM than under the ensemble only looks robust.")
    return True
