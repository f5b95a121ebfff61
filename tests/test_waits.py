"""Bounded waits and lesson defaults: heavy requests are refused over the wait cap with the estimate and the cap
named, show progress while they run, and a cancelled run shows what finished; the Attack lab and the story open on
a digit the plain model loses and Grad Reg (y) keeps; a blank-looking clean map says why.
"""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st

from gradreg.lessons import panels, zoo_views
from gradreg.paper.zoo import read_manifest
from gradreg.training.checkpoints import SHIPPED_DIR, load


def _open(app, page: str):
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _fresh() -> None:
    """Forget every cached result and every measured cost, so the next request computes (and times) again."""
    from gradreg.ui import bounded

    st.cache_data.clear()
    bounded._ledger.clear()


def test_the_default_digit_of_the_shipped_zoo_fools_plain_and_not_grad_reg():
    manifest = read_manifest(SHIPPED_DIR)
    plain_entry, regular_entry = zoo_views.showcase(manifest)
    plain, regular = (load(SHIPPED_DIR / e["file"]).build(frozen=True) for e in (plain_entry, regular_entry))
    from gradreg.core.data import load_dataset

    x, y = load_dataset(manifest["dataset"], "test").tensors
    eps = panels.size_range("fgsm")[2]  # the Attack lab's default ε
    index = panels.default_digit(plain, regular, x[:256], y[:256], eps=eps)
    assert index is not None
    shown = {name: panels.attack_panel(model, x[index:index + 1], y[index:index + 1], method="fgsm", size=eps)
             for name, model in (("plain", plain), ("regular", regular))}
    assert shown["plain"]["pred_clean"] == shown["plain"]["label"] != shown["plain"]["pred_adv"], "plain is fooled"
    assert shown["regular"]["pred_adv"] == shown["regular"]["label"], "Grad Reg (y) keeps it"
    earlier = [panels.default_digit(plain, regular, x[i:i + 1], y[i:i + 1], eps=eps) for i in range(index)]
    assert earlier == [None] * index, "the first such digit"


def test_default_digit_is_none_when_no_digit_shows_the_lesson(linear_model, synthetic):
    x, y = synthetic
    assert panels.default_digit(linear_model, linear_model, x[:32], y[:32], eps=0.1) is None  # same model: no gap


def test_a_blank_looking_clean_map_says_why():
    panel = {"saliency_clean": np.full((1, 4, 4), 1e-9, np.float32), "saliency_adv": np.ones((1, 4, 4), np.float32),
             "probs_clean": np.array([0.0, 1.0, 0.0])}
    note = panels.blank_note(panel, "plain")
    assert "looks blank" in note and "100.00% sure" in note and "near-zero gradient" in note
    assert panels.blank_note(panel | {"saliency_clean": np.full((1, 4, 4), 0.5, np.float32)}, "plain") == ""


def test_the_attack_lab_opens_on_the_default_digit(app, tiny_zoo):
    from gradreg.ui import catalogue, compute

    _open(app, "pages/attack_lab.py")
    manifest = read_manifest(tiny_zoo)
    plain, regular = (catalogue.load_model(e["id"]) for e in zoo_views.showcase(manifest))
    x, y = compute.test_batch("synthetic", tuple(range(min(256, compute.test_size("synthetic")))))
    eps = app.slider(key="attack.eps.fgsm.linf").value
    assert panels.default_digit(plain, regular, x, y, eps=0.1) is None and eps == 0.05, \
        "no tiny-zoo digit shows the lesson at the default ε 0.1: the page takes the cards' nearest ε that has one"
    expected = panels.default_digit(plain, regular, x, y, eps=eps)
    classes = compute.gallery("synthetic")
    if app.session_state["attack.mode"] == "gallery":
        shown = classes[app.session_state["attack.class"]][app.session_state["attack.example"]]
    else:
        shown = app.number_input(key="attack.index").value
    assert shown == expected
    summaries = [m.value for m in app.markdown if "predicted" in m.value]
    assert "fooled" in summaries[0] and "still correct" in summaries[1], summaries  # plain, then Grad Reg (y)


def test_curves_over_the_wait_cap_are_refused_with_the_estimate_and_the_cap(app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_WAIT_SECONDS", "1")
    _fresh()
    _open(app, "pages/attack_lab.py")  # FGSM: cheap, within the cap
    app.number_input(key="curves.n").set_value(192)
    app.selectbox(key="curves.method").set_value("pgd").run()  # times ≥ 1 s of chunks, then refuses the rest
    assert not app.exception
    refused = [e.value for e in app.error if e.value.startswith("Refused")]
    assert refused and "GRADREG_MAX_WAIT_SECONDS" in refused[0] and "s per image" in refused[0], refused
    app.run()  # the cost is known now: refused before anything runs, no progress shown
    assert any(e.value.startswith("Refused") for e in app.error)
    assert not app.get("progress")


def test_a_computation_shows_progress_and_a_cancelled_one_what_finished(app):
    _fresh()
    _open(app, "pages/attack_lab.py")
    (status,) = [s for s in app.status if "accuracy" in s.label]
    assert status.label.startswith("Computed FGSM accuracy of 3 models at 7 ε") and status.state == "complete"
    assert app.get("progress"), "the progress bar of the run"
    app.session_state["curves.cancelled"] = app.session_state["curves.running"]  # what the Cancel click sets
    app.run()
    (warning,) = [w.value for w in app.warning if w.value.startswith("Cancelled")]
    assert "21 of 21 parts" in warning  # 3 models × 7 ε, one chunk of 64 FGSM images each: all had finished
    assert len(app.get("plotly_chart")) == 2 * 3 + 1, "the panels, then the curves from the finished points"
    next(b for b in app.button if b.label == "Resume").click().run()
    assert not [w for w in app.warning if w.value.startswith("Cancelled")]


def test_the_metrics_table_runs_as_a_bounded_run(app, monkeypatch):
    _fresh()
    _open(app, "pages/saliency_compare.py")
    app.multiselect(key="saliency.methods").set_value(["input_gradient", "gradcam"])
    app.number_input(key="saliency.n").set_value(8)
    app.toggle(key="saliency.metrics").set_value(True).run()
    assert any(s.label.startswith("Computed the metrics of 3 models × 2 methods") for s in app.status)
    assert len(app.dataframe[0].value) == 6
    monkeypatch.setenv("GRADREG_MAX_WAIT_SECONDS", "1")
    app.multiselect(key="saliency.methods").set_value(["integrated_gradients", "smoothgrad"])
    app.number_input(key="saliency.n").set_value(200).run()  # times ≥ 1 s of it, then refuses the rest
    assert any(e.value.startswith("Refused") and "the metrics of 3 models" in e.value for e in app.error)
    app.run()  # measured now: refused before anything runs
    assert any(e.value.startswith("Refused") for e in app.error) and not app.get("progress")


def test_chunks_are_small_and_cheap_defaults_apply_until_full_strength():
    from gradreg.ui import heavy

    n, params, note = heavy.curve_settings("square", 64, False)
    assert (n, params) == (16, (("queries", 100),)) and "full strength" in note
    assert heavy.curve_settings("square", 64, True) == (64, (), "")
    assert heavy.curve_settings("pgd", 64, False) == (64, (), "")
    assert heavy.batch_size("pgd", ()) == 16 and heavy.batch_size("pgd", (("steps", 20),)) == 32
    assert heavy.batch_size("square", (("queries", 100),)) == 32 and heavy.batch_size("fgsm", ()) == 64
    assert heavy.batch_size("square", ()) == 3, "the attack's own 1 000 queries"
    assert heavy.batch_size("ensemble", ()) == 1


def test_the_storys_fgsm_step_shows_the_plain_model_fooled(app):
    _open(app, "pages/story.py")
    app.segmented_control(key="story.step").set_value(1).run()
    app.select_slider(key="story.eps").set_value(0.05).run()  # the tiny zoo's ε with a digit that shows the lesson
    assert not app.exception
    (summary,) = [m.value for m in app.markdown if "predicted" in m.value]
    assert "fooled" in summary, summary
    app.segmented_control(key="story.step").set_value(3).run()  # the same digit on the regularized model
    (summary,) = [m.value for m in app.markdown if "predicted" in m.value]
    assert "still correct" in summary, summary


def test_no_page_runs_a_bounded_computation_inside_a_fragment():
    """A Cancel click inside a fragment only queues a fragment rerun, which does not interrupt the running script
    (streamlit's script_requests: fragment reruns never preempt): bounded runs must stay outside fragments."""
    import ast
    from pathlib import Path

    bounded = {"accuracy_curves", "masking_results", "metrics_table", "morph_results"}
    for path in sorted((Path(__file__).resolve().parent.parent / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any("fragment" in ast.unparse(d) for d in node.decorator_list):
                called = {n.func.attr for n in ast.walk(node) if isinstance(n, ast.Call)
                          and isinstance(n.func, ast.Attribute)}
                assert not called & bounded, f"{path.name}: {node.name} is a fragment running {called & bounded}"


def test_a_batch_at_eps_zero_is_the_clean_accuracy_without_running_the_attack(monkeypatch, tiny_zoo, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path))
    from gradreg.evaluation.accuracy import robust_accuracy
    from gradreg.ui import catalogue, compute, heavy

    cid = catalogue.usable_models()[0]["id"]
    x, y = compute.test_batch("synthetic", tuple(range(8, 40)))
    attacked = robust_accuracy(catalogue.load_model(cid), x, y, method="pgd", epsilons=[0.0], steps=3)[0]
    assert heavy.robust_batch(cid, "synthetic", 8, 40, "square", 0.0, ()) == round(attacked["accuracy"] * 32)


def test_metrics_in_image_batches_equal_the_metrics_of_all_images(monkeypatch, tiny_zoo, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path))
    from gradreg.ui import catalogue, compute, heavy

    cid = catalogue.usable_models()[0]["id"]
    whole = compute.saliency_metrics(cid, "synthetic", 16, "input_gradient")
    halves = [heavy.metrics_batch(cid, "synthetic", a, a + 8, "input_gradient") for a in (0, 8)]
    for k, v in whole.items():
        assert (halves[0][k] + halves[1][k]) / 2 == pytest.approx(v, rel=1e-4, abs=1e-6), k
