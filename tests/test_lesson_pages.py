"""AppTest of the three lesson pages (transfer matrix, gradient masking, morphs) on the tiny synthetic zoo, which
lacks the distilled and PGD-AT models: the pages must name what is missing and work with the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def _open(app: AppTest, page: str) -> AppTest:
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _charts(app: AppTest) -> dict[str, dict]:
    return {chart.proto.id: json.loads(chart.proto.spec) for chart in app.get("plotly_chart")}


def _chart(app: AppTest, key: str) -> dict:
    (spec,) = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if key in c.proto.id]
    return spec


def _zoo_ids(zoo: Path) -> dict[str, str]:
    return {m["name"]: m["id"] for m in json.loads((zoo / "manifest.json").read_text())["models"]}


def test_transfer_matrix_follows_eps_and_shows_a_cell(app, tiny_zoo):
    _open(app, "pages/transfer.py")
    assert any("Defensive distillation" in i.value and "Grad Reg (1/K)" in i.value for i in app.info)
    assert len(app.multiselect(key="transfer.models").value) == 3, "plain, grad_y and fgsm_at of the tiny zoo"
    matrix = _chart(app, "transfer.matrix")
    assert len(matrix["data"][0]["z"]) == 3 and "paper" not in json.dumps(matrix), "no paper numbers off MNIST"
    app.select_slider(key="transfer.eps").set_value(0.5).run()
    assert not app.exception
    moved = _chart(app, "transfer.matrix")
    assert moved["data"][0]["z"] != matrix["data"][0]["z"], "moving ε changed no cell"
    assert "ε = 0.5" in moved["layout"]["title"]["text"]
    before = _chart(app, "transfer.examples")
    ids = _zoo_ids(tiny_zoo)
    app.selectbox(key="transfer.source").set_value(ids["fgsm_at"])
    app.selectbox(key="transfer.evaluated").set_value(ids["plain"]).run()
    assert not app.exception
    summary = next(m.value for m in app.markdown if "crafted images" in m.value)
    assert summary.startswith("**fgsm_at → plain**")
    after = _chart(app, "transfer.examples")
    assert after != before and len(after["data"]) % 3 == 0 and after["data"], "clean, crafted and δ per example"
    matrix = _chart(app, "transfer.matrix")
    (shape,) = matrix["layout"]["shapes"]
    labels = matrix["data"][0]["x"]
    assert (shape["y0"], shape["x0"]) == (labels.index("fgsm_at") - 0.5, labels.index("plain") - 0.5), "outlined"


@pytest.mark.parametrize("method", ["tgsm", "pgd"])
def test_transfer_matrix_other_attacks(app, method):
    _open(app, "pages/transfer.py")
    app.number_input(key="transfer.n").set_value(16)
    app.radio(key="transfer.method").set_value(method).run()
    assert not app.exception and not app.error
    assert _chart(app, "transfer.matrix")["layout"]["title"]["text"].startswith(("TGSM", "PGD"))


def test_masking_lesson_table_verdicts_and_story(app):
    _open(app, "pages/masking.py")
    app.number_input(key="masking.n").set_value(16)
    app.number_input(key="masking.steps").set_value(5)
    app.number_input(key="masking.queries").set_value(50).run()
    assert not app.exception and not app.error
    assert any("Defensive distillation" in i.value and "PGD adv. training" in i.value for i in app.info)
    table, verdicts, details = app.dataframe  # the tiny zoo's report has no strong-attack table
    assert any("no strong-attack table" in c.value for c in app.caption)
    assert list(table.value["model"]) == ["fgsm_at", "grad_y_110"]
    assert list(verdicts.value["model"]) == ["fgsm_at", "grad_y_110"] and len(verdicts.value.columns) == 1 + 6
    assert set(details.value["verdict"]) <= {"pass", "fail", "skipped"} and len(details.value) == 2 * 6
    assert set(verdicts.value["zero_gradients"]) <= {"pass", "FAIL"}
    illusion = details.value[details.value["check"] == "single_step_illusion"]["detail"]
    eps = app.select_slider(key="masking.eps").value
    assert all(text.startswith(f"at ε {eps:g} FGSM leaves") for text in illusion), "the check follows the slider"
    best = table.value.loc[table.value["white-box FGSM"].idxmax()]
    story = [m.value for m in app.markdown if m.value.startswith("- ")]
    assert f"**{best['model']}** ({best['white-box FGSM']:.0%})" in story[0], "the narrative reads the table"
    assert len(story) == 3 and not any("Distillation" in s for s in story), "no distilled model in the tiny zoo"
    assert len(_chart(app, "masking.bars")["data"]) == 4


def test_morph_grids_and_judge_rates(app):
    _open(app, "pages/morphs.py")
    app.multiselect(key="morphs.models").set_value(app.multiselect(key="morphs.models").value[:2])
    app.slider(key="morphs.steps").set_value(3)
    app.number_input(key="morphs.n").set_value(16).run()
    assert not app.exception and not app.error
    grids = [c for key, c in _charts(app).items() if "morphs.grid" in key]
    assert len(grids) == 2 and all(len(g["layout"]["annotations"]) == 10 * 9 for g in grids)
    (rates,) = app.dataframe
    assert list(rates.value["model"]) and rates.value["images"].tolist() == [16, 16]
    assert rates.value["grid: judge says target"].between(0, 1).all()
    judge = app.selectbox(key="morphs.judge")
    judge.set_value(app.multiselect(key="morphs.models").value[0]).run()
    assert any("judges its own images" in w.value for w in app.warning)


def test_lesson_pages_explain_a_missing_zoo(app, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tmp_path / "empty"))
    for page in ("pages/transfer.py", "pages/masking.py", "pages/morphs.py"):
        _open(app, page)
        assert app.info, page


def test_teacher_link_sets_the_models_and_hides_the_budget(app, tiny_zoo):
    app.run()
    app.switch_page("pages/morphs.py")
    app.query_params.update({"teacher": "1", "morphs.models": ["plain", "grad_y_10"]})
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    ids = _zoo_ids(tiny_zoo)
    assert app.multiselect(key="morphs.models").value == [ids["plain"], ids["grad_y_10"]]
    assert not [n for n in app.number_input if n.key == "morphs.n"], "teacher mode hides the image count"
    assert len([k for k in _charts(app) if "morphs.grid" in k]) == 2
    app.switch_page("pages/masking.py").run()
    assert not app.exception and not app.number_input, "no attack budget controls for a class"
    assert app.dataframe, "the lesson still runs on the default budget"


@pytest.mark.parametrize("page, variable", [("pages/transfer.py", "GRADREG_MAX_IMAGES"),
                                            ("pages/masking.py", "GRADREG_MAX_ATTACK_STEPS"),
                                            ("pages/morphs.py", "GRADREG_MAX_IMAGES")])
def test_lesson_pages_refuse_requests_over_the_server_caps(app, monkeypatch, page, variable):
    monkeypatch.setenv(variable, "8")  # below each page's smallest request
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(variable in e.value for e in app.error), [e.value for e in app.error]
    assert not app.get("plotly_chart"), "nothing is computed over the cap"
