"""The Sweeps page (AppTest): it reads the zoo's results and a real sweep's, draws seed bands where there are seeds,
reports what it cannot read, and opens a trial in the Attack lab — never starting Ray or training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradreg.sweeps.runner import run_sweep
from gradreg.sweeps.spec import expand

SEEDED = {"sweep": {"n_eval": 16, "epsilons": [0.1, 0.2], "reference": "plain"},
          "grid": {"dataset": "synthetic", "model": "mlp", "recipe": "torch", "epochs": 1, "batch_size": 50,
                   "seed": [0, 1]},
          "role": [{"name": "plain"}, {"name": "gr", "regularizer": "grad_y", "lam": [1, 10]}]}


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory):
    """A real serial sweep: plain and Grad Reg (y) at two λ, two seeds each, on the synthetic set."""
    root = tmp_path_factory.mktemp("sweeps")
    rows = run_sweep(expand(SEEDED).trials, root / "seeded", backend="serial", cpus_per_trial=1)
    assert all(row["status"] == "done" for row in rows)
    return root


def _open(app, monkeypatch, sweeps: Path | None = None):
    if sweeps is not None:
        monkeypatch.setenv("GRADREG_SWEEP_DIR", str(sweeps))
    app.run()
    app.switch_page("pages/sweeps.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _figure(app) -> dict:
    (chart,) = app.get("plotly_chart")
    return json.loads(chart.proto.spec)


def test_the_zoo_is_a_sweep_and_its_curve_is_drawn(app, monkeypatch):
    _open(app, monkeypatch)
    folder = app.selectbox(key="sweeps.folder")
    assert folder.options == ["the shipped zoo (MNIST)"]
    figure = _figure(app)
    names = {trace.get("name") for trace in figure["data"]}
    assert {"grad_y", "plain", "fgsm_at"} <= names  # the λ grid is one role; one seed each: no band
    assert not any(trace.get("fill") for trace in figure["data"])
    grad_y = next(trace for trace in figure["data"] if trace.get("name") == "grad_y")
    assert grad_y["x"] == [0.1, 1.0, 10.0, 110.0]
    assert figure["layout"]["xaxis"]["type"] == "log"


def test_seeds_draw_bands_and_the_quantity_changes_the_curve(app, monkeypatch, seeded_sweep):
    _open(app, monkeypatch, seeded_sweep)
    app.selectbox(key="sweeps.folder").select_index(1).run()
    assert app.selectbox(key="sweeps.folder").value == "sweep: seeded"
    figure = _figure(app)
    bands = [trace for trace in figure["data"] if trace.get("fill") == "toself"]
    assert len(bands) == 2, "plain and gr, two seeds each"
    lines = {trace["name"]: trace for trace in figure["data"] if trace.get("name")}
    assert lines["gr (mean of 2 seeds)"]["x"] == [1.0, 10.0]
    clean = lines["gr (mean of 2 seeds)"]["y"]
    app.selectbox(key="sweeps.kind").set_value("Mean ‖∇ₓ CE‖₂").run()
    assert not app.exception
    norms = {t["name"]: t for t in _figure(app)["data"] if t.get("name")}["gr (mean of 2 seeds)"]["y"]
    assert norms != clean and max(norms) < 50


def test_a_trial_opens_in_the_attack_lab_with_its_reference(app, monkeypatch, seeded_sweep):
    _open(app, monkeypatch, seeded_sweep)
    app.selectbox(key="sweeps.folder").select_index(1).run()
    app.selectbox(key="sweeps.trial").set_value("gr-seed1-lam10").run()
    app.button[0].click().run()
    assert not app.exception, [e.value for e in app.exception]
    chosen = app.multiselect(key="attack.models").value
    rows = [json.loads(line) for line in (seeded_sweep / "seeded" / "results.jsonl").read_text().splitlines()]
    ids = {row["trial"]: row["id"] for row in rows}
    assert chosen == [ids["plain-seed0"], ids["gr-seed1-lam10"]]
    assert app.title[0].value == "Attack lab"


def test_an_unreadable_results_table_is_reported(app, monkeypatch, tmp_path):
    (tmp_path / "sweeps" / "broken").mkdir(parents=True)
    (tmp_path / "sweeps" / "broken" / "results.jsonl").write_text("{not json\n")
    _open(app, monkeypatch, tmp_path / "sweeps")
    app.selectbox(key="sweeps.folder").select_index(1).run()
    assert not app.exception
    assert "cannot be read" in app.error[0].value and "line 1" in app.error[0].value


def test_the_lambda_explorer_draws_seed_spread_where_the_zoo_has_seeds():
    from gradreg.lessons import zoo_views
    from gradreg.viz import page_figures

    def entry(name: str, lam: float, clean: float) -> dict:
        curves = [{"eps": 0.1, "fgsm": clean / 2, "pgd": clean / 4, "transfer_fgsm": clean / 2}]
        card = {"clean": clean, "grad_norm": 0.1, "max_prob": 0.9, "other_log_prob": -9.0, "curves": curves}
        return {"name": name, "id": name, "config": {"regularizer": "grad_y", "lam": lam, "defence": "none"},
                "card": card}

    manifest = {"models": [entry("grad_y_1", 1.0, 0.99), entry("grad_y_110", 110.0, 0.90)],
                "replicas": [entry("grad_y_110-seed1", 110.0, 0.80), entry("grad_y_110-seed2", 110.0, 0.70)]}
    rows = zoo_views.lambda_rows(manifest, "grad_y", 0.1)
    assert "spread" not in rows[0] and rows[1]["spread"]["seeds"] == 3
    assert rows[1]["spread"]["clean"] == pytest.approx(0.1)  # sd of 0.9, 0.8, 0.7
    figure = page_figures.lambda_sweep(rows, lam=110.0).to_dict()
    clean = next(t for t in figure["data"] if t["name"] == "clean")
    assert list(clean["error_y"]["array"]) == [None, pytest.approx(0.1)]
    assert zoo_views.seed_spread(manifest, "grad_y_1", 0.1) is None
