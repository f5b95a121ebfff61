"""The pages' heavy computations as bounded runs (``gradreg.ui.bounded``): accuracy-against-ε curves, the saliency
metrics table, the gradient-masking checks and the morph grids, each split into small cached chunks so a request
is estimated before it runs, shows what it is doing, and can be cancelled.
"""

from __future__ import annotations

import streamlit as st

from gradreg.attacks import ATTACKS
from gradreg.evaluation.accuracy import accuracy, robust_accuracy
from gradreg.evaluation.masking import attack_plan
from gradreg.ui.bounded import Chunk, Outcome, run_chunks
from gradreg.ui.catalogue import load_model, model_labels, short_name, usable_models
from gradreg.lessons import panels
from gradreg.ui.compute import judge_rates, masking_verdicts, morph_grid, test_batch
from gradreg.ui.labels import label
from gradreg.ui.limits import check_knob_caps, check_limit
from gradreg.ui.stored import stored

# Images per chunk, so that one chunk takes ~1–2 s on one thread of a loaded 2-core CPU: (images, at this many steps
# or queries), scaled down for more work. Measured on paper_cnn with 1 thread: PGD-40 on 16 images 1.1 s, APGD-100 on
# 16 images 1.3 s, Square with 100 queries on 16 images 1.4 s (per image, Square on 5 images costs 1.9× what it costs
# on 64: its many small forward passes), the cheap ensemble on 8 images 1.0 s, FGSM on 64 images 0.1 s.
BATCH = {"square": (32, 100), "ensemble": (8, 100), "apgd": (16, 100), "apgd_t": (6, 100)}
BATCH_STEPS = (16, 40)  # the other iterative attacks, per step like PGD
MAX_BATCH = 64
# Until the user asks for full strength, the slow gradient-free attacks run on fewer images and queries.
CHEAP = {"square": {"queries": 100}, "ensemble": {"queries": 100, "steps": 20, "targets": 1}}
CHEAP_IMAGES = 16


def curve_settings(method: str, n: int, full: bool) -> tuple[int, tuple, str]:
    """(images, knobs as sorted pairs, a note) for the curves of ``method``: the attack's own knobs when ``full``
    or when it is not a slow one; else ``CHEAP`` knobs on at most ``CHEAP_IMAGES`` images."""
    if full or method not in CHEAP:
        return n, (), ""
    knobs = ", ".join(f"{k} {v}" for k, v in CHEAP[method].items())
    note = (f"{label(method)} runs cheap here ({knobs}, the first {min(n, CHEAP_IMAGES)} images): switch on full "
            "strength for the attack's own settings.")
    return min(n, CHEAP_IMAGES), tuple(sorted(CHEAP[method].items())), note


def batch_size(method: str, params: tuple) -> int:
    """Images per chunk of ``method`` with knobs ``params`` (the attack's own defaults for the others)."""
    knobs = ATTACKS[method].params | dict(params)
    work = knobs.get("queries", knobs.get("steps"))
    if not isinstance(work, int):
        return MAX_BATCH  # single-step attacks
    images, reference = BATCH.get(method, BATCH_STEPS)
    return max(1, min(MAX_BATCH, images * reference // max(work, 1)))


@st.cache_data(show_spinner=False, max_entries=8192)
@stored
def robust_batch(checkpoint_id: str, dataset: str, start: int, stop: int, method: str, eps: float,
                 params: tuple) -> int:
    """How many of the test images ``start``…``stop - 1`` ``checkpoint_id`` still classifies under ``method``."""
    x, y = test_batch(dataset, tuple(range(start, stop)))
    if eps == 0:  # nothing can move: the clean accuracy (Square and PGD would still spend every query and step)
        return round(accuracy(load_model(checkpoint_id), x, y) * (stop - start))
    record = robust_accuracy(load_model(checkpoint_id), x, y, method=method, epsilons=[eps], seed=start,
                             **dict(params))[0]
    return round(record["accuracy"] * (stop - start))


def accuracy_curves(ids: list[str], dataset: str, n: int, method: str, epsilons: list[float], params: tuple, *,
                    key: str = "curves") -> tuple[list[dict], Outcome]:
    """Accuracy of each model under ``method`` on the first ``n`` test images at each ε, as a bounded run of
    image batches; returns the records of the points whose every batch finished, and the run's outcome."""
    check_limit("images", n)  # before any cache lookup: the same request is refused on every server state
    check_knob_caps(dict(params))
    names = model_labels(usable_models())
    points, chunks = _attack_chunks([(cid, method, eps, params) for cid in ids for eps in epsilons], dataset, n,
                                    names)
    outcome = run_chunks(key, f"{label(method)} accuracy of {len(ids)} models at {len(epsilons)} ε on {n} images",
                         chunks)
    correct: dict[tuple, list] = {}
    for (cid, _, eps, _), value in zip(points, outcome.values):
        correct.setdefault((cid, eps), []).append(value)
    records = [{"model": names.get(cid, cid), "eps": eps, "accuracy": sum(v) / n}
               for (cid, eps), v in correct.items() if None not in v]
    return records, outcome


METRICS_BATCH = 8  # images per metrics chunk: Integrated Gradients and SmoothGrad take ~0.1 s an image on one core


@st.cache_data(show_spinner=False, max_entries=4096)
@stored
def metrics_batch(checkpoint_id: str, dataset: str, start: int, stop: int, method: str) -> dict:
    """``panels.metrics_row`` (means over the images) of the test images ``start``…``stop - 1``."""
    x, y = test_batch(dataset, tuple(range(start, stop)))
    return panels.metrics_row(load_model(checkpoint_id), x, y, method=method)


def metrics_table(ids: list[str], methods: list[str], dataset: str, n: int, *,
                  key: str = "saliency.table") -> tuple[list[dict], Outcome]:
    """Saliency metrics per (model, method) on the first ``n`` test images, in image batches (every metric is a
    mean over the images, so the batches' means weighted by their sizes are the table's); returns the rows whose
    every batch finished, and the run's outcome."""
    check_limit("images", n)
    parts = [(cid, m, a, min(a + METRICS_BATCH, n)) for cid in ids for m in methods
             for a in range(0, n, METRICS_BATCH)]
    chunks = [Chunk(f"{label(m)} metrics of {short_name(cid)}", _bind(metrics_batch, cid, dataset, a, b, m),
                    ("metrics_batch", cid, dataset, a, b, m), f"{label(m)} metrics", b - a,
                    warm=_bind(_warm, cid, dataset, n)) for cid, m, a, b in parts]
    outcome = run_chunks(key, f"the metrics of {len(ids)} models × {len(methods)} methods on {n} images", chunks)
    sums: dict[tuple, dict] = {}
    for (cid, m, a, b), values in zip(parts, outcome.values):
        row = sums.setdefault((cid, m), {})
        for k, v in (values or {"": None}).items():
            row[k] = None if v is None or row.get(k, 0) is None else row.get(k, 0) + v * (b - a) / n
    rows = [{"model": short_name(cid), "method": label(m), **{k.replace("_", " "): float(f"{v:.3g}")
                                                            for k, v in values.items()}}
            for (cid, m), values in sums.items() if None not in values.values()]
    return rows, outcome


def _masking_plan(eps: float, steps: int, queries: int) -> list[tuple[str, float, tuple]]:
    """(method, ε, knobs) of the white-box attacks the masking checks at ``eps`` need (``attack_plan``: FGSM,
    PGD-``steps``, Square with ``queries``); the single-step-illusion check at the lesson's ε too, where a large
    FGSM-PGD gap is what it teaches to look for."""
    knobs = {"fgsm": (), "pgd": (("steps", steps),), "square": (("queries", queries),)}
    return [(m, e, knobs[m]) for m, epsilons in attack_plan((eps,), illusion_eps=eps).items() for e in epsilons]


@stored
def masking_checks(checkpoint_id: str, source: str | None, dataset: str, n: int, eps: float, steps: int,
                   queries: int) -> list[dict]:
    """One model's masking checks at ``eps``: its white-box accuracies from its (cached) image batches, then the
    transfer check and the gradient statistics (``masking_verdicts``)."""
    correct: dict[str, dict[float, int]] = {}
    for method, e, params in _masking_plan(eps, steps, queries):
        for a, b in _batches(method, e, params, n):
            at = correct.setdefault(method, {})
            at[e] = at.get(e, 0) + robust_batch(checkpoint_id, dataset, a, b, method, e, params)
    accuracies = tuple(sorted((m, tuple(sorted((e, k / n) for e, k in v.items()))) for m, v in correct.items()))
    return masking_verdicts(checkpoint_id, source, dataset, n, eps, accuracies)


def masking_results(ids: list[str], source: str | None, dataset: str, n: int, eps: float, steps: int,
                    queries: int, *, key: str = "masking.run") -> tuple[dict[str, list[dict]], Outcome]:
    """The masking checks of each model at ``eps`` (short name → ``masking_checks``-style records): its white-box
    accuracies in image batches, then one cheap chunk for the transfer check and the gradient statistics; returns
    the models whose every chunk finished."""
    plan = _masking_plan(eps, steps, queries)
    points, chunks = _attack_chunks([(cid, m, e, p) for cid in ids for m, e, p in plan], dataset, n,
                                    {cid: short_name(cid) for cid in ids})
    chunks += [Chunk(f"transfer check and gradient statistics of {short_name(cid)}",
                     _bind(masking_checks, cid, source, dataset, n, eps, steps, queries),
                     ("masking_checks", cid, source, dataset, n, eps, steps, queries), "transfer check and statistics",
                     n) for cid in ids]
    outcome = run_chunks(key, f"the masking checks of {len(ids)} defences at ε {eps:g} on {n} images", chunks)
    finished = outcome.values[len(points):]
    return {short_name(cid): v for cid, v in zip(ids, finished) if v is not None}, outcome


def _batches(method: str, eps: float, params: tuple, n: int) -> list[tuple[int, int]]:
    """The image batches (start, stop) of one attack point on the first ``n`` test images: ε 0 is one batch."""
    step = batch_size(method, params) if eps > 0 else n
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _attack_chunks(requests: list[tuple], dataset: str, n: int, names: dict) -> tuple[list[tuple], list[Chunk]]:
    """Image-batch chunks of ``robust_batch`` for each (checkpoint id, method, ε, knobs) of ``requests`` on the
    first ``n`` test images: (the points (id, method, ε, (start, stop)), their chunks). ε 0 is one clean-accuracy
    chunk, timed apart from the attack."""
    points, chunks = [], []
    for cid, method, eps, params in requests:
        for a, b in _batches(method, eps, params, n):
            points.append((cid, method, eps, (a, b)))
            chunks.append(Chunk(f"{label(method)} on {names.get(cid, cid)}, ε {eps:g}",
                                _bind(robust_batch, cid, dataset, a, b, method, eps, params),
                                ("robust_batch", cid, dataset, a, b, method, eps, params),
                                _kind(method, params) if eps > 0 else "clean accuracy", b - a,
                                warm=_bind(_warm, cid, dataset, n)))
    return points, chunks


def morph_results(ids: list[str], judge: str, dataset: str, indices: tuple[int, ...], n: int, steps: int,
                  step_size: float, *, key: str = "morphs.run") -> tuple[dict, dict, Outcome]:
    """(short name → ``morph_grid``, short name → ``judge_rates``, outcome): two chunks per model."""
    chunks = []
    for cid in ids:
        chunks.append(Chunk(f"TGSM grid of {short_name(cid)}", _bind(morph_grid, cid, judge, dataset, indices, steps,
                                                                     step_size),
                            ("morph_grid", cid, judge, dataset, indices, steps, step_size), f"TGSM grid, {steps} steps",
                            len(indices), warm=_bind(_warm, cid, dataset, n)))
        chunks.append(Chunk(f"judge rates of {short_name(cid)}", _bind(judge_rates, cid, judge, dataset, n, steps,
                                                                       step_size),
                            ("judge_rates", cid, judge, dataset, n, steps, step_size), f"judge rates, {steps} steps", n))
    outcome = run_chunks(key, f"the morphs of {len(ids)} models ({steps} TGSM steps)", chunks)
    grids = {short_name(cid): v for cid, v in zip(ids, outcome.values[0::2]) if v is not None}
    rates = {short_name(cid): v for cid, v in zip(ids, outcome.values[1::2]) if v is not None}
    return grids, rates, outcome


def _kind(method: str, params: tuple) -> str:
    """The cost class of an attack with its knobs, as the refusal message names it."""
    return ", ".join([label(method), *(f"{k} {v}" for k, v in params)])


def _warm(checkpoint_id: str, dataset: str, n: int) -> None:
    load_model(checkpoint_id)
    test_batch(dataset, tuple(range(n)))


def _bind(function, *args):
    return lambda: function(*args)
