"""Cached computations of the pages, keyed by primitives (checkpoint ids, dataset names, test indices, numbers):
test images, saliency maps and their figures, attack panels, accuracy points, saliency metrics, the randomization
check, and the lesson pages' drawn digits, masking checks, morph grids, quiz questions and transfer matrices.

Each one checks the server's caps (``gradreg.ui.limits``) before it computes; models come from
``gradreg.ui.catalogue`` and are never mutated. Those marked ``@stored`` are read from the zoo's precomputed lessons
when the call is there (``gradreg.ui.stored``).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from gradreg.core.data import load_dataset
from gradreg.evaluation.accuracy import robust_accuracy
from gradreg.evaluation.masking import checks_from_accuracies
from gradreg.explain.saliency import SALIENCY_METHODS
from gradreg.lessons import digit, morphs, panels, quiz, transfer, zoo_views
from gradreg.ui.catalogue import zoo_manifest, load_model, short_name
from gradreg.ui.labels import label
from gradreg.ui.limits import check_knob_caps, check_limit
from gradreg.ui.stored import stored
from gradreg.viz import figures, page_figures


def saliency_methods() -> list[str]:
    return list(SALIENCY_METHODS)


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
@stored
def gallery(dataset: str, per_class: int = 8) -> dict[int, list[int]]:
    return panels.gallery(_test_set(dataset)[1], per_class=per_class)


@st.cache_data(show_spinner=False, max_entries=64)
@stored
def images(dataset: str, indices: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    x, y = test_batch(dataset, indices)
    return x.numpy(), y.tolist()


@st.cache_data(show_spinner=False, max_entries=1024)
@stored
def saliency_maps(checkpoint_id: str, dataset: str, indices: tuple[int, ...], method: str) -> np.ndarray:
    """Signed maps ``(N, C, H, W)`` of ``method`` for each digit's predicted class."""
    return panels.saliency_maps(load_model(checkpoint_id), test_batch(dataset, indices)[0], method=method)


def prewarm_maps(ids: list[str], dataset: str, indices: tuple[int, ...], method: str = "input_gradient") -> None:
    """Compute (and cache) the maps of every model a slider can reach, so moving it never waits for a model."""
    for checkpoint_id in ids:
        saliency_maps(checkpoint_id, dataset, indices, method)


def map_figure(rows: dict[str, str], dataset: str, indices: tuple[int, ...], *, method: str = "input_gradient",
               shared_scale: bool = True):
    """``page_figures.map_grid`` of the digits at ``indices`` for ``rows`` (row title → checkpoint id)."""
    x, y = images(dataset, indices)
    maps = {title: saliency_maps(cid, dataset, indices, method) for title, cid in rows.items()}
    return page_figures.map_grid(x, maps, shared_scale=shared_scale, column_titles=[str(k) for k in y],
                                cell_px=max(60, min(130, 560 // max(len(indices), 1))))  # fills half a wide page


@st.cache_data(show_spinner=False, max_entries=16)
def showcase_figure(signature: tuple, dataset: str, indices: tuple[int, ...]):
    """The home page's picture: plain vs the best Grad Reg (y) model's input gradients (``viz.saliency_grid``)."""
    pair = zoo_views.showcase(zoo_manifest(signature)[0])
    x, y = images(dataset, indices)  # stored with the zoo, like the maps: no test set to load
    maps = {f"{e['name']}": saliency_maps(e["id"], dataset, indices, "input_gradient") for e in pair}
    return figures.saliency_grid(maps, x, shared_scale=False, column_titles=[f"label {k}" for k in y])


@st.cache_data(show_spinner=False, max_entries=64)
def showcase_digit(signature: tuple, eps: float, scan: int = 256) -> int | None:
    """``panels.default_digit`` of the zoo's plain and showcase Grad Reg (y) models under FGSM at ``eps``, among its
    first ``scan`` test images: the digit that shows the lesson (None without a zoo, or when no digit does)."""
    manifest = zoo_manifest(signature)[0]
    pair = zoo_views.showcase(manifest) if manifest else None
    if pair is None:
        return None
    return lesson_digit(pair[0]["id"], pair[1]["id"], manifest["dataset"], eps, scan)


@stored
def lesson_digit(plain: str, regularized: str, dataset: str, eps: float, scan: int) -> int | None:
    """``panels.default_digit`` of two models under FGSM at ``eps`` among the first ``scan`` test images."""
    x, y = test_batch(dataset, tuple(range(min(scan, test_size(dataset)))))
    return panels.default_digit(load_model(plain), load_model(regularized), x, y, eps=eps)


def showcase_view(signature: tuple, eps: float) -> tuple[int, float] | None:
    """(digit, ε) that shows the lesson: ``showcase_digit`` at ``eps``, else at the zoo cards' nearest ε that has
    one; None when none does."""
    manifest = zoo_manifest(signature)[0]
    candidates = sorted({eps, *(zoo_views.card_epsilons(manifest) if manifest else ())},
                        key=lambda e: (abs(e - eps), e))
    return next(((index, e) for e in candidates if e > 0 and (index := showcase_digit(signature, e)) is not None),
                None)


@st.cache_data(show_spinner=False, max_entries=512)
@stored
def attack_panel(checkpoint_id: str, dataset: str, index: int, method: str, size: float, target: str | int | None,
                 params: tuple, saliency_method: str) -> dict:
    """``panels.attack_panel`` for one model and one test image (``size``: the attack's ε, step size or θ;
    ``params``: its other knobs as sorted (name, value) pairs)."""
    check_knob_caps(dict(params))  # the server's caps (gradreg.ui.limits): LimitError, shown by ``failures``
    x, y = test_batch(dataset, (index,))
    return panels.attack_panel(load_model(checkpoint_id), x, y, method=method, size=size, target=target,
                               saliency_method=saliency_method, **dict(params))


@st.cache_data(show_spinner=False, max_entries=4096)
@stored
def robust_point(checkpoint_id: str, dataset: str, n: int, method: str, eps: float, params: tuple) -> float:
    check_limit("images", n)
    check_knob_caps(dict(params))
    x, y = test_batch(dataset, tuple(range(n)))
    return robust_accuracy(load_model(checkpoint_id), x, y, method=method, epsilons=[eps], **dict(params))[0]["accuracy"]


@st.cache_data(show_spinner=False, max_entries=256)
@stored
def saliency_metrics(checkpoint_id: str, dataset: str, n: int, method: str) -> dict:
    check_limit("images", n)
    x, y = test_batch(dataset, tuple(range(n)))
    return panels.metrics_row(load_model(checkpoint_id), x, y, method=method)


@st.cache_data(show_spinner=False, max_entries=256)
@stored
def randomization(checkpoint_id: str, dataset: str, indices: tuple[int, ...], method: str) -> list[dict]:
    check_limit("images", len(indices))
    x, y = test_batch(dataset, indices)
    return panels.randomization_records(load_model(checkpoint_id), x, y, method=method)


def randomization_table(ids: list[str], dataset: str, indices: tuple[int, ...], method: str) -> dict[str, list]:
    """Model short name → ``panels.randomization_records`` on the digits at ``indices``."""
    return {short_name(cid): randomization(cid, dataset, indices, method) for cid in ids}


def compare_figures(ids: list[str], methods: list[str], dataset: str, indices: tuple[int, ...], *,
                    shared_scale: bool) -> list:
    """Per digit, a methods × models grid of maps (first column: the digit)."""
    x, _ = images(dataset, indices)
    maps = {m: {short_name(cid): saliency_maps(cid, dataset, indices, m) for cid in ids} for m in methods}
    titles = [f"#{i} (label {k})" for i, k in zip(indices, images(dataset, indices)[1])]
    return [page_figures.method_grid(x[j], {label(m): {name: a[j] for name, a in row.items()}
                                            for m, row in maps.items()},
                                    shared_scale=shared_scale, image_title=titles[j]) for j in range(len(indices))]


# The lesson pages' computations (one model or a few, by id; the page passes its knobs).
@st.cache_data(show_spinner=False, max_entries=512)
def digit_reaction(checkpoint_id: str, pixels: bytes, eps: float) -> dict:
    """``digit.react`` of one model on the 28×28 float32 image whose bytes are ``pixels`` (a cache key)."""
    image = np.frombuffer(pixels, dtype=np.float32).reshape(digit.SIZE, digit.SIZE)
    return digit.react(load_model(checkpoint_id), image, eps=eps)


@st.cache_data(show_spinner=False, max_entries=256)
@stored
def masking_verdicts(checkpoint_id: str, source: str | None, dataset: str, n: int, eps: float,
                     accuracies: tuple) -> list[dict]:
    """``masking.checks_from_accuracies`` of one model at one ε on the first ``n`` test images, from its white-box
    ``accuracies`` (sorted (method, ((ε, accuracy), ...)) pairs); ``source``: the transfer check's model, or None.
    The single-step-illusion check runs at ``eps`` too, so its verdict follows the lesson's slider."""
    x, y = test_batch(dataset, tuple(range(n)))
    return checks_from_accuracies(load_model(checkpoint_id), x, y, {m: dict(v) for m, v in accuracies},
                                  epsilons=(eps,), illusion_eps=eps, source=load_model(source) if source else None)


@st.cache_data(show_spinner=False, max_entries=128)
@stored
def morph_grid(checkpoint_id: str, judge: str, dataset: str, indices: tuple[int, ...], steps: int,
               step_size: float) -> dict:
    """``morphs.morph_grid`` of the test images at ``indices``, read by the ``judge`` model."""
    x, y = test_batch(dataset, indices)
    return morphs.morph_grid(load_model(checkpoint_id), x, y, steps=steps, step_size=step_size,
                             judge=load_model(judge))


@st.cache_data(show_spinner=False, max_entries=128)
@stored
def judge_rates(checkpoint_id: str, judge: str, dataset: str, n: int, steps: int, step_size: float) -> dict:
    """``morphs.judge_rates`` on the first ``n`` test images."""
    x, y = test_batch(dataset, tuple(range(n)))
    return morphs.judge_rates(load_model(checkpoint_id), load_model(judge), x, y, steps=steps, step_size=step_size)


@st.cache_data(show_spinner="Asking the models…", max_entries=64)
@stored
def quiz_question(models: tuple[tuple[str, str], ...], dataset: str, seed: int, eps: float) -> dict:
    """``quiz.make_question`` on the first ``quiz.POOL`` test images of ``dataset`` (``models``: (name, id) pairs)."""
    x, y = test_batch(dataset, tuple(range(min(quiz.POOL, test_size(dataset)))))
    return quiz.make_question({name: load_model(cid) for name, cid in models}, x, y, seed=seed, eps=eps)


@st.cache_data(show_spinner=False, max_entries=128)
@stored
def transfer_cells(ids: tuple[str, ...], dataset: str, n: int, method: str, eps: float, params: tuple) -> list[dict]:
    """``transfer.transfer_cells`` of the models ``ids`` on the first ``n`` test images (``params``: sorted knobs)."""
    x, y = test_batch(dataset, tuple(range(n)))
    return transfer.transfer_cells({cid: load_model(cid) for cid in ids}, x, y, method=method, eps=eps,
                                   **dict(params))


@st.cache_data(show_spinner=False, max_entries=256)
@stored
def cell_examples(source: str, model: str, dataset: str, n: int, method: str, eps: float, params: tuple) -> dict:
    """``transfer.cell_examples``: what ``source`` crafts and ``model`` is scored on."""
    x, y = test_batch(dataset, tuple(range(n)))
    return transfer.cell_examples(load_model(source), load_model(model), x, y, method=method, eps=eps,
                                  **dict(params))
