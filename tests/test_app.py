"""AppTest: every page runs without an exception, shows its key elements, and reacts to its widgets.

The app reads a tiny zoo built once per session on synthetic data (``GRADREG_ZOO_DIR``) and a per-test user
directory (``GRADREG_CHECKPOINT_DIR``); nothing here trains on MNIST.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gradreg.attacks import ATTACKS
from gradreg.ui import presets

ROOT = Path(__file__).resolve().parent.parent


def _open(app: AppTest, page: str) -> AppTest:
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _charts(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_home_shows_the_comparison_and_the_models(app):
    _open(app, "pages/home.py")
    assert app.title[0].value.startswith("gradreg")
    assert any(s.value == "Models available: 6" for s in app.subheader)
    (figure,) = _charts(app)
    assert len(figure["data"]) >= 3 * 6, "input, plain and regularized rows for six digits"
    assert len(app.main.get("page_link")) == 5 + len(presets.PRESETS), "the pages, then the lesson presets"


def test_the_sidebar_links_every_page_once(app):
    """app.py draws the navigation (Streamlit's own is off, see ``ui.sidebar_navigation``): one link per page."""
    app.run()
    links = [link.proto for link in app.sidebar.get("page_link")]
    assert [link.label for link in links][:2] == ["Home", "λ explorer"]
    pages = [link.page for link in links]
    assert len(pages) == len(set(pages)) == len(list((ROOT / "pages").glob("*.py"))), pages


def test_pages_explain_a_missing_zoo(app, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tmp_path / "empty"))
    for page in ("pages/home.py", "pages/lambda_explorer.py", "pages/attack_lab.py", "pages/saliency_compare.py"):
        _open(app, page)
        assert app.info, page
        assert not app.error, page


def test_broken_zoo_files_give_messages_not_tracebacks(app, monkeypatch, tiny_zoo, tmp_path):
    import streamlit as st

    st.cache_data.clear()  # earlier tests cached the λ = 110 model's maps under its checkpoint id
    st.cache_resource.clear()
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for f in tiny_zoo.iterdir():
        if f.is_file() and "-lam110-" not in f.name:  # the manifest still lists the λ = 110 model: file gone
            (zoo / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(zoo))
    _open(app, "pages/lambda_explorer.py")
    assert any("no checkpoint" in e.value for e in app.error)
    app.select_slider(key="lambda.lam.grad_y").set_value(1.0).run()
    assert not app.exception
    (zoo / "manifest.json").write_text("{not json")
    for page in ("pages/home.py", "pages/lambda_explorer.py"):
        _open(app, page)
    assert any("cannot be read" in e.value for e in app.error)


def test_lambda_slider_updates_metrics_chart_and_maps(app):
    _open(app, "pages/lambda_explorer.py")
    slider = app.select_slider(key="lambda.lam.grad_y")
    assert slider.options == ["0.1", "1", "10", "110 (the authors')"] and slider.value == 110.0
    before, charts_before = _metrics(app), _charts(app)
    assert set(before) >= {"Clean accuracy", "FGSM white-box", "PGD white-box", "FGSM from plain", "Confidence"}
    slider.set_value(10.0).run()
    assert not app.exception
    after, charts_after = _metrics(app), _charts(app)
    assert after != before, "moving λ changed no metric"
    assert charts_after[0]["layout"]["shapes"][-1]["x0"] == 10.0, "the sweep marks the current λ"
    assert charts_after[1] != charts_before[1], "the saliency maps follow λ"
    app.select_slider(key="lambda.eps").set_value(0.3).run()
    assert not app.exception
    assert _metrics(app)["PGD white-box"] != after["PGD white-box"] or _metrics(app) != after


def test_attack_lab_shows_the_reports_strong_attack_table_for_the_chosen_models(app, monkeypatch, tmp_path):
    from gradreg.lessons import zoo_views

    rows = [{"model": role, "eps": 0.3, "n": 64, "clean": 0.9, "fgsm": fgsm, "pgd": 0.0, "ensemble": 0.0}
            for role, fgsm in (("plain", 0.05), ("fgsm_at", 0.8), ("pgd_at", 0.9))]  # no PGD-AT in the tiny zoo
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "robustness.json").write_text(json.dumps(
        {"meta": {"pgd_steps": 40, "restarts": 2, "ensemble": {"queries": 300}}, "records": rows}))
    monkeypatch.setattr(zoo_views, "REPORTS_DIR", tmp_path)
    _open(app, "pages/attack_lab.py")
    (table,) = app.dataframe  # the page's one table
    assert list(table.value["fgsm"]) == [0.05, 0.8] and len(table.value) == 2, "the chosen models' rows only"
    assert any("PGD-40 with 2 random start(s)" in c.value and "300 queries" in c.value for c in app.caption)


def test_attack_lab_panels_follow_eps(app):
    _open(app, "pages/attack_lab.py")
    chosen = app.multiselect(key="attack.models").value
    assert len(chosen) == 3, "plain, the showcase Grad Reg (y) model and FGSM-AT by default"
    summaries = [m.value for m in app.markdown if "predicted" in m.value]
    assert len(summaries) == 3
    assert len(_charts(app)) == 2 * 3 + 1, "an image row and probability bars per model, then the ε curves"
    app.slider(key="attack.eps.fgsm.linf").set_value(0.3).run()
    assert not app.exception
    assert "‖δ‖∞ = 0.300" in [m.value for m in app.markdown if "predicted" in m.value][0]


@pytest.mark.parametrize("method", sorted(ATTACKS))
def test_attack_lab_runs_every_attack(app, method):
    _open(app, "pages/attack_lab.py")
    app.multiselect(key="attack.models").set_value(app.multiselect(key="attack.models").value[:2])
    app.selectbox(key="attack.method").set_value(method).run()
    assert not app.exception
    assert not app.error, [e.value for e in app.error]
    assert len([m for m in app.markdown if "predicted" in m.value]) == 2
    if ATTACKS[method].targeted:
        app.selectbox(key="attack.target").set_value(7).run()
        assert "target 7" in [m.value for m in app.markdown if "predicted" in m.value][0]


def test_attack_lab_asks_for_two_models(app):
    _open(app, "pages/attack_lab.py")
    app.multiselect(key="attack.models").set_value(app.multiselect(key="attack.models").value[:1]).run()
    assert not app.exception
    assert any("two models" in i.value for i in app.info)


def test_saliency_compare_grid_scale_metrics_and_randomization(app):
    _open(app, "pages/saliency_compare.py")
    charts = _charts(app)
    assert len(charts) == 3 + 1, "one grid per digit (0, 3, 7) and the randomization curves"
    assert len(charts[0]["data"]) == 1 + 5 * 3, "the digit, then 5 methods × 3 models"
    app.toggle(key="saliency.shared").set_value(False).run()
    assert not app.exception
    assert _charts(app)[0] != charts[0], "the colour scale changes"
    app.multiselect(key="saliency.methods").set_value(["input_gradient"])
    app.number_input(key="saliency.n").set_value(8)
    app.toggle(key="saliency.metrics").set_value(True).run()
    assert not app.exception
    (table,) = app.dataframe
    assert len(table.value) == 3 and "total variation" in table.value.columns


def _wait_for(app: AppTest, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        if predicate(app):
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the training panel")


def _submit(app: AppTest, *, epochs: int, n_train: int = 100) -> None:
    app.selectbox(key="train.dataset").set_value("synthetic")
    app.number_input(key="train.epochs").set_value(epochs)
    app.number_input(key="train.n_train").set_value(n_train)
    app.button[0].click().run()


def test_training_runs_in_the_background_and_shows_everywhere(app):
    _open(app, "pages/train.py")
    _submit(app, epochs=1)
    _wait_for(app, lambda a: any("Test accuracy" in s.value for s in a.success))
    assert app.get("plotly_chart"), "the loss and accuracy curves"
    (bar,) = app.get("progress")
    assert bar.proto.text.startswith("done ·") and "batch" not in bar.proto.text, bar.proto.text
    assert bar.proto.value == 100
    app.switch_page("pages/models.py").run()
    assert any("(yours)" in row for row in app.dataframe[0].value["model"])
    app.switch_page("pages/train.py").run()
    _submit(app, epochs=1)
    assert any("Already trained" in i.value for i in app.info)


def test_stop_button_stops_a_run(app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_EPOCHS", "100")  # over the app's default cap of 20: a run long enough to stop
    _open(app, "pages/train.py")
    _submit(app, epochs=50, n_train=500)
    _wait_for(app, lambda a: any(b.label == "Stop" for b in a.button))
    next(b for b in app.button if b.label == "Stop").click().run()
    _wait_for(app, lambda a: any("nothing was saved" in w.value for w in a.warning))
    (bar,) = app.get("progress")
    assert bar.proto.text.startswith("stopped ·") and "batch" not in bar.proto.text, bar.proto.text


def test_train_refuses_long_runs(app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_TRAIN_SECONDS", "0.001")
    _open(app, "pages/train.py")
    app.button[0].click().run()
    assert not app.exception
    assert any("limit" in e.value for e in app.error)


def test_models_page_lists_usable_and_unusable(app, tiny_ckpt_dir, tiny_zoo, tmp_path, monkeypatch):
    user = tmp_path / "mine"
    user.mkdir()
    for f in tiny_ckpt_dir.iterdir():
        (user / f.name).write_bytes(f.read_bytes())
    (user / "evil.pt").write_bytes(b"\x80\x04junk")
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(user))
    _open(app, "pages/models.py")
    assert app.title[0].value == "Models & data"
    assert any("evil.pt" in w.value for w in app.warning)
    assert len(app.dataframe) == 1, "the models; the datasets are a list (their reasons are whole sentences)"
    assert len(app.dataframe[0].value) == 7, "six zoo models and the user's one"
    where = " ".join(m.value for m in app.markdown)
    assert "**synthetic**: available." in where
    assert f"`{tiny_zoo}`" in where and f"`{user}`" in where, "the server's directories, for whoever runs it"


def _texts(block) -> list[str]:
    """The text of every element under an AppTest block (values, labels, bodies)."""
    return [str(getattr(node, attr)) for node in block for attr in ("value", "label", "body")
            if isinstance(getattr(node, attr, None), str)]


@pytest.mark.parametrize("page", ["pages/home.py", "pages/models.py", "pages/train.py"])
def test_the_sidebar_shows_no_server_paths(app, page, tiny_zoo, tmp_path):
    _open(app, page)
    texts = _texts(app.sidebar)
    assert texts, "the sidebar has content (navigation, teaching box)"
    leaks = [t for t in texts if str(tiny_zoo) in t or str(tmp_path) in t or "/home/" in t or "/tmp/" in t]
    assert not leaks, leaks
