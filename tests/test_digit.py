"""Uploaded and drawn digits → MNIST-style 28×28 (hand-made images of every awkward kind), and the quiz's questions."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gradreg.lessons import digit, quiz
from gradreg.lessons.digit import EmptyImageError, UploadError, preprocess_image


def _png(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def _seven(height: int, width: int, *, top: int, left: int, size: int, ink: int = 0, paper: int = 255) -> np.ndarray:
    """A '7' (bar and diagonal) of ``size`` pixels at (top, left) on a ``height × width`` grey sheet."""
    a = np.full((height, width), paper, np.uint8)
    thick = max(size // 8, 1)
    a[top:top + thick, left:left + size] = ink
    for i in range(size):
        col = left + size - 1 - i // 2
        a[top + i, col - thick + 1:col + 1] = ink
    return a


def _centre(d: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(d.shape)
    return float((ys * d).sum() / d.sum()), float((xs * d).sum() / d.sum())


def _check_mnist_like(d: np.ndarray) -> None:
    assert d.shape == (28, 28) and d.dtype == np.float32
    assert d.min() >= 0 and d.max() == pytest.approx(1.0)
    cy, cx = _centre(d)
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5, (cy, cx)
    assert np.median(np.concatenate([d[0], d[-1], d[:, 0], d[:, -1]])) == 0, "bright on dark: a black border"
    assert np.mean(d == 0) > 0.5, "mostly black background"
    rows, cols = np.nonzero(d > 0.1)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21, "fitted in the 20×20 box"
    assert max(np.ptp(rows), np.ptp(cols)) + 1 >= 18, "scaled up to fill it"


def test_dark_ink_on_white_off_centre_large_rgb_becomes_bright_on_dark_and_centred():
    grey = _seven(400, 600, top=30, left=420, size=120)
    rgb = np.stack([grey, grey, np.minimum(grey.astype(int) + 20, 255).astype(np.uint8)], axis=-1)
    d = preprocess_image(_png(rgb))
    _check_mnist_like(d)
    assert d.mean() < 0.5, "mostly dark background"


def test_polarity_does_not_matter():
    dark_on_light = preprocess_image(_png(_seven(100, 100, top=10, left=10, size=60)))
    light_on_dark = preprocess_image(_png(_seven(100, 100, top=10, left=10, size=60, ink=255, paper=0)))
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-5)


def test_jpeg_and_grey_background():
    d = preprocess_image(_png(_seven(200, 150, top=40, left=20, size=100, ink=40, paper=180), "JPEG", quality=80))
    _check_mnist_like(d)


def test_rgba_ink_on_transparent_is_composited_on_the_opposite_background():
    for colour in (0, 255):  # black ink and white ink on a fully transparent sheet (RGB under it: the other colour)
        alpha = 255 - _seven(120, 120, top=20, left=20, size=80)  # 255 where the ink is
        rgba = np.zeros((120, 120, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = 255 - colour, alpha
        rgba[alpha > 0, :3] = colour
        _check_mnist_like(preprocess_image(_png(rgba)))
        _check_mnist_like(preprocess_image(rgba))  # a canvas's RGBA array takes the same path


def test_sixteen_bit_png():
    a = (_seven(90, 90, top=5, left=5, size=70).astype(np.uint16) * 257)
    data = _png(a.astype(np.uint16))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    _check_mnist_like(preprocess_image(data))


def test_animated_gif_uses_the_first_frame():
    first = Image.fromarray(_seven(80, 80, top=5, left=5, size=60))
    second = Image.fromarray(np.full((80, 80), 255, np.uint8))  # blank: would be 'empty' if it were read
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[second], duration=100)
    _check_mnist_like(preprocess_image(buf.getvalue()))


@pytest.mark.parametrize("array", [np.zeros((1, 1), np.uint8), np.full((50, 40), 255, np.uint8),
                                   np.full((30, 30, 3), 128, np.uint8)], ids=["1x1", "white", "grey-rgb"])
def test_empty_pictures_say_so(array):
    with pytest.raises(EmptyImageError, match="empty"):
        preprocess_image(_png(array))


def test_fully_transparent_and_blank_canvas():
    with pytest.raises(EmptyImageError):
        preprocess_image(np.zeros((280, 280, 4), np.uint8))
    assert digit.canvas_digit(None) is None
    assert digit.canvas_digit(np.zeros((280, 280, 4), np.uint8)) is None
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[60:220, 130:150] = 255  # a white '1' with full alpha on a transparent canvas
    _check_mnist_like(digit.canvas_digit(canvas))


def test_tiny_image_with_a_stroke_is_scaled_up():
    a = np.zeros((3, 2), np.uint8)
    a[:, 1] = 255
    d = preprocess_image(_png(a))
    assert d.shape == (28, 28) and np.count_nonzero(d > 0.5) >= 20


@pytest.mark.parametrize("data, message", [
    (b"not an image at all", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a readable image"),
    (b"x" * (digit.MAX_BYTES + 1), "limit"),
])
def test_bad_files_raise_clear_upload_errors(data, message):
    with pytest.raises(UploadError, match=message):
        preprocess_image(data)


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(digit, "MAX_PIXELS", 100 * 100)
    with pytest.raises(UploadError, match="pixels"):
        preprocess_image(_png(np.zeros((101, 100), np.uint8)))


def test_bad_arrays_and_types():
    with pytest.raises(UploadError, match="shape"):
        preprocess_image(np.zeros((4, 4, 5)))
    with pytest.raises(UploadError, match="NaN"):
        preprocess_image(np.full((4, 4), np.nan))
    with pytest.raises(UploadError, match="bytes or a numpy array"):
        preprocess_image("seven.png")


def test_react_predicts_and_attacks_a_digit(tiny_model):
    image = preprocess_image(_png(_seven(100, 100, top=10, left=10, size=70)))
    result = digit.react(tiny_model, image, eps=0.2)
    fgsm, tgsm = result["fgsm"], result["tgsm"]
    assert fgsm["probs_clean"].sum() == pytest.approx(1.0, abs=1e-5)
    assert fgsm["label"] == fgsm["pred_clean"], "the model's own answer is the label the attacks push away from"
    assert tgsm["target"] == (fgsm["pred_clean"] + 1) % 10
    assert fgsm["linf"] <= 0.2 + 1e-6 and fgsm["saliency_clean"].shape == (1, 28, 28)
    row = digit.summary_row("tiny", result)
    assert row["prediction"] == fgsm["pred_clean"] and 0 < row["confidence"] <= 1


@pytest.fixture(scope="module")
def quiz_models(tiny_model):
    """Three different models: the tiny trained CNN and two linear models with different random weights."""
    from gradreg.core.models import build_model

    torch.manual_seed(1)
    first = build_model("linear").eval().requires_grad_(False)
    torch.manual_seed(2)
    return {"tiny": tiny_model, "linear": first, "linear 2": build_model("linear").eval().requires_grad_(False)}


def test_quiz_questions_are_deterministic_and_the_answer_is_a_choice(quiz_models, synthetic):
    x, y = synthetic[0][:16], synthetic[1][:16]
    first = quiz.make_question(quiz_models, x, y, seed=3)
    again = quiz.make_question(quiz_models, x, y, seed=3)
    assert first["answer"] in first["choices"] and sorted(first["choices"]) == sorted(quiz_models)
    assert (first["kind"], first["index"], first["answer"], first["choices"]) == \
           (again["kind"], again["index"], again["answer"], again["choices"])
    np.testing.assert_array_equal(first["shown"], again["shown"])
    seen = {(q["kind"], q["index"], q["answer"]) for q in (quiz.make_question(quiz_models, x, y, seed=s)
                                                             for s in range(8))}
    assert len(seen) > 1, "different seeds ask different questions"
    kinds = [quiz.make_question(quiz_models, x, y, seed=s)["kind"] for s in range(8)]
    assert [quiz.drawn_kind(len(quiz_models), s) for s in range(8)] == kinds and len(set(kinds)) == 2


def test_quiz_question_shows_the_answers_own_picture(quiz_models, synthetic):
    x, y = synthetic[0][:8], synthetic[1][:8]
    from gradreg.explain.saliency import saliency

    q = quiz.make_question(quiz_models, x, y, seed=1, kind="saliency")
    expected = saliency(quiz_models[q["answer"]], x[q["index"]:q["index"] + 1], "pred", "input_gradient")
    np.testing.assert_allclose(q["shown"], expected[0, 0].numpy(), atol=1e-6)
    assert q["this"]["map_tv"] >= 0 and set(q["averages"]) == set(quiz_models)
    text = quiz.explain(q)
    assert q["answer"] in text and f"{q['this']['map_tv']:.2f}" in text
    adversarial = quiz.make_question(quiz_models, x, y, seed=1, kind="adversarial", eps=0.1)
    assert np.abs(adversarial["delta"]).max() <= 0.1 + 1e-6
    assert "FGSM" in quiz.explain(adversarial)


def test_quiz_rejects_bad_settings(quiz_models, synthetic):
    x, y = synthetic[0][:4], synthetic[1][:4]
    with pytest.raises(ValueError, match="2 to 6"):
        quiz.make_question({"one": quiz_models["tiny"]}, x, y, seed=0)
    with pytest.raises(ValueError, match="saliency, adversarial"):
        quiz.make_question(quiz_models, x, y, seed=0, kind="riddle")


def test_quiz_candidates_follow_the_zoo(tiny_zoo):
    from gradreg.paper.zoo import read_manifest

    names = [c["name"] for c in quiz.candidates(read_manifest(tiny_zoo))]
    assert names[0] == "plain" and names[1].startswith("grad_y_") and "fgsm_at" in names
    assert quiz.candidates({"models": []}) == []
    assert quiz.score([True, False, True]) == (2, 3)


def test_a_header_beyond_pillows_own_bomb_guard_is_a_pixel_limit_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow raises when a header exceeds twice this
    monkeypatch.setattr(digit, "MAX_PIXELS", 10**9)
    with pytest.raises(UploadError, match="too many pixels"):
        preprocess_image(_png(np.zeros((20, 20), np.uint8)))
