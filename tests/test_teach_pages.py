"""AppTest of the teaching pages (Draw a digit, Quiz, The paper's story) on the tiny synthetic zoo, through app.py."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from gradreg import load_dataset
from gradreg.lessons import quiz
from gradreg.paper.zoo import read_manifest
from gradreg.training import checkpoints

ROOT = Path(__file__).resolve().parent.parent


def _open(app: AppTest, page: str, **state) -> AppTest:
    app.run()
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _one() -> np.ndarray:
    """A dark '1' on white paper, off-centre, larger than MNIST."""
    a = np.full((120, 90), 255, np.uint8)
    a[10:100, 60:70] = 0
    return a


def test_draw_page_asks_for_a_drawing(app):
    _open(app, "pages/draw.py")
    assert app.title[0].value == "Draw a digit"
    assert any("canvas is empty" in i.value for i in app.info)
    assert not app.error and not app.get("plotly_chart")


def test_draw_upload_makes_every_model_react(app):
    _open(app, "pages/draw.py")
    chosen = app.multiselect(key="draw.models").value
    assert len(chosen) == 3
    app.segmented_control(key="draw.source").set_value("upload").run()
    assert any("Upload" in i.value for i in app.info)
    app.file_uploader(key="draw.upload").set_value(("one.png", _png(_one()), "image/png")).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    (table,) = app.dataframe
    assert len(table.value) == 3 and set(table.value.columns) >= {"prediction", "confidence", "after FGSM"}
    assert table.value["confidence"].between(0, 1).all()
    bars, grid = app.get("plotly_chart")
    app.slider(key="draw.eps").set_value(0.3).run()
    assert not app.exception
    assert app.get("plotly_chart")[1].proto.spec != grid.proto.spec, "the attacks follow ε"


@pytest.mark.parametrize("data, element, text", [
    (b"GIF89a but not really", "error", "not a readable image"),
    (_png(np.full((40, 40), 200, np.uint8)), "info", "empty"),
    (_png(np.zeros((1, 1), np.uint8)), "info", "empty"),
])
def test_draw_upload_of_a_bad_file_explains(app, data, element, text):
    _open(app, "pages/draw.py")
    app.segmented_control(key="draw.source").set_value("upload").run()
    app.file_uploader(key="draw.upload").set_value(("x.png", data, "image/png")).run()
    assert not app.exception
    assert any(text in e.value for e in getattr(app, element)), [e.value for e in getattr(app, element)]
    assert not app.dataframe


def _expected_answer(tiny_zoo: Path, seed: int, eps: float) -> str:
    """The page's question recomputed from the library: the same candidates, test images and seed."""
    chosen = quiz.candidates(read_manifest(tiny_zoo))
    models = {c["name"]: checkpoints.load(tiny_zoo / f"{c['id']}.safetensors").build(frozen=True) for c in chosen}
    x, y = load_dataset("synthetic", "test").tensors
    return quiz.make_question(models, x[:quiz.POOL], y[:quiz.POOL], seed=seed, eps=eps)["answer"]


def test_quiz_right_answer_scores_and_next_question_moves_on(app, tiny_zoo):
    _open(app, "pages/quiz.py", **{"quiz.seed": 11})
    assert app.metric[0].value == "0 / 0"
    choices = [b for b in app.button if b.key.startswith("quiz.choice.")]
    assert len(choices) == 3, "plain, the showcase Grad Reg (y) model and FGSM-AT"
    answer = _expected_answer(tiny_zoo, 11, 0.2)
    app.button(key=f"quiz.choice.{answer}").click().run()
    assert not app.exception
    assert app.metric[0].value == "1 / 1" and app.success
    assert any("It was" in m.value and "total variation" in m.value for m in app.markdown)
    app.button(key="quiz.next").click().run()
    assert app.session_state["quiz.seed"] == 12 and app.metric[0].value == "1 / 1" and not app.success
    wrong = next(b for b in app.button if b.key.startswith("quiz.choice.")
                 and b.key != f"quiz.choice.{_expected_answer(tiny_zoo, 12, 0.2)}")
    wrong.click().run()
    assert app.metric[0].value == "1 / 2" and app.error
    assert all(b.disabled for b in app.button if b.key.startswith("quiz.choice.")), "one guess per question"


def test_quiz_offers_an_eps_only_for_questions_that_attack(app):
    from gradreg.lessons import quiz

    for seed in range(6):
        _open(app, "pages/quiz.py", **{"quiz.seed": seed})
        sliders = [s for s in app.select_slider if s.key == "quiz.eps"]
        assert len(sliders) == (quiz.drawn_kind(3, seed) == "adversarial"), seed


def test_story_steps_forward_and_back(app):
    _open(app, "pages/story.py")
    assert app.segmented_control(key="story.step").value == 0
    assert not [s for s in app.select_slider if s.key == "story.eps"], "step 1 attacks nothing: no ε slider"
    assert any("plain model" in m.value for m in app.markdown)
    assert len(app.get("plotly_chart")) == 1
    app.button(key="story.next").click().run()
    assert app.segmented_control(key="story.step").value == 1
    assert [s.key for s in app.select_slider] == ["story.eps"], "step 2 attacks: its ε slider is back"
    assert any("predicted" in m.value for m in app.markdown), "step 2 attacks a digit live"
    for step in range(2, 6):
        app.segmented_control(key="story.step").set_value(step).run()
        assert not app.exception, (step, [e.value for e in app.exception])
        assert not app.error, (step, [e.value for e in app.error])
    assert app.button(key="story.next").disabled
    app.toggle(key="story.live").set_value(True).run()
    assert len(app.metric) == 3, "plain, Grad Reg (y) and FGSM-AT under live PGD"
    app.button(key="story.back").click().run()
    assert app.segmented_control(key="story.step").value == 4


def test_story_numbers_come_from_the_cards(app, tiny_zoo):
    _open(app, "pages/story.py")
    plain = next(e for e in read_manifest(tiny_zoo)["models"] if e["name"] == "plain")
    text = " ".join(m.value for m in app.markdown)
    assert f"{plain['card']['clean']:.1%}" in text and f"first {plain['card']['n']} test" in text


def test_teaching_pages_explain_a_missing_zoo(app, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tmp_path / "empty"))
    for page in ("pages/draw.py", "pages/quiz.py", "pages/story.py"):
        _open(app, page)
        assert app.info, page
        assert not app.error, page


def test_a_link_sets_the_draw_models_and_teacher_mode_hides_live_pgd(app, tiny_zoo):
    ids = {e["name"]: e["id"] for e in read_manifest(tiny_zoo)["models"]}
    app.run()
    app.switch_page("pages/draw.py")
    app.query_params.update({"draw.models": ["plain", "grad_y_10"]})
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.multiselect(key="draw.models").value == [ids["plain"], ids["grad_y_10"]]
    app.query_params.update({"teacher": "1"})
    app.switch_page("pages/story.py").run()
    app.segmented_control(key="story.step").set_value(5).run()
    assert not app.exception and app.get("plotly_chart"), "the PGD curves from the cards still show"
    assert not [t for t in app.toggle if t.key == "story.live"], "no live PGD runs from a class"
