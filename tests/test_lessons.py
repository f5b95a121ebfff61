"""The lessons' data: paper reference cells, transfer-cell examples, the masking lesson and the morph grids."""

from __future__ import annotations

import pytest

from gradreg.evaluation.masking import masking_checks
from gradreg.lessons import masking, morphs, transfer, zoo_views
from gradreg.viz import lesson_figures

LABELS = {"fgsm": "FGSM", "pgd": "PGD", "square": "Square", "transfer": "FGSM from plain"}


def _entry(name: str, lam: float = 0.0) -> dict:
    return {"name": name, "id": f"id-{name}", "config": {"lam": lam}}


@pytest.fixture
def manifest():
    names = ["plain", "grad_y_1", "grad_y_10", "fgsm_at", "distill", "grad_fd"]
    return {"models": [_entry(n, float(n.split("_")[-1]) if n.startswith("grad_y_") else 0.0) for n in names]}


@pytest.fixture
def pair(tiny_model, linear_model, synthetic):
    x, y = synthetic
    return {"cnn": tiny_model, "linear": linear_model}, x[:40], y[:40]


def test_paper_numbers_only_where_the_paper_has_them():
    assert transfer.paper_accuracy("plain", "distill", method="fgsm", eps=0.2, dataset="mnist") == 0.578
    assert transfer.paper_accuracy("grad_y", "grad_y", method="fgsm", eps=0.1, dataset="mnist") == 0.92
    assert transfer.paper_accuracy("plain", "plain", method="fgsm", eps=0.30000001, dataset="mnist") == 0.113
    assert transfer.paper_accuracy("distill", "plain", method="fgsm", eps=0.2, dataset="mnist") is None
    assert transfer.paper_accuracy("grad_y", "grad_y", method="fgsm", eps=0.4, dataset="mnist") is None
    assert transfer.paper_accuracy("plain", "distill", method="tgsm", eps=0.2, dataset="mnist") is None
    assert transfer.paper_accuracy("plain", "distill", method="fgsm", eps=0.2, dataset="synthetic") is None
    assert all(0 <= v <= 1 for v in transfer.PAPER_MNIST_FGSM_ACCURACY.values())


def test_roles_missing_roles_and_judge(manifest):
    roles = zoo_views.zoo_roles(manifest)
    assert roles == {"id-plain": "plain", "id-grad_y_10": "grad_y", "id-fgsm_at": "fgsm_at", "id-distill": "distill"}
    ids, missing = zoo_views.role_ids(manifest, masking.MASKING_ROLES)
    assert ids == ["id-distill", "id-fgsm_at", "id-grad_y_10"] and missing == ["pgd_at"]
    assert zoo_views.judge_id(manifest) == "id-grad_fd"
    assert zoo_views.zoo_roles(None) == {} and zoo_views.judge_id(None) is None
    assert zoo_views.role_ids(None, ("plain",)) == ([], ["plain"])


@pytest.mark.parametrize("method", transfer.TRANSFER_METHODS)
def test_cell_examples_count_what_the_matrix_counts(pair, method):
    models, x, y = pair
    params = {"steps": 3} if method == "pgd" else {}
    records = transfer.transfer_cells(models, x, y, method=method, eps=0.3, **params)
    assert len(records) == 4 and {r["eps"] for r in records} == {0.3}
    for source in models:
        for name, model in models.items():
            cell = next(r for r in records if r["source"] == source and r["model"] == name)
            examples = transfer.cell_examples(models[source], model, x, y, method=method, eps=0.3, limit=5, **params)
            assert examples["accuracy"] == pytest.approx(cell["accuracy"])
            assert examples["n"] == len(x) and len(examples["index"]) == 5
            assert (abs(examples["x_adv"] - examples["x"]) <= 0.3 + 1e-6).all()
            assert (examples["target"] is None) == (method != "tgsm")
            if source == name:
                assert examples["n_disagree"] == 0, "a model agrees with itself"


def test_cell_examples_put_the_fooled_ones_first(pair):
    models, x, y = pair
    examples = transfer.cell_examples(models["cnn"], models["linear"], x, y, method="fgsm", eps=0.3, limit=len(x))
    fooled = [m != t for m, t in zip(examples["model_pred"], examples["label"])]
    assert sum(fooled) == examples["n_fooled"] > 0
    assert fooled == sorted(fooled, reverse=True), "fooled examples come first"
    rest = [s != m for s, m, f in zip(examples["source_pred"], examples["model_pred"], fooled) if not f]
    assert rest == sorted(rest, reverse=True), "then the ones the two models disagree on"
    assert examples["kind"][0] == "fools the evaluated model"


def test_bad_method_and_limit_are_refused(pair):
    models, x, y = pair
    with pytest.raises(ValueError, match="fgsm, tgsm, pgd"):
        transfer.transfer_cells(models, x, y, method="jsma", eps=0.1)
    with pytest.raises(ValueError, match="limit"):
        transfer.cell_examples(models["cnn"], models["cnn"], x, y, method="fgsm", eps=0.1, limit=0)


def test_lesson_row_reads_the_masking_checks(tiny_model, linear_model, synthetic):
    x, y = synthetic[0][:16], synthetic[1][:16]
    checks = masking_checks(tiny_model, x, y, epsilons=(0.2,), source=linear_model, pgd_steps=3, square_queries=20)
    row = masking.lesson_row("cnn", checks, 0.2)
    numbers = {c["check"]: c["numbers"] for c in checks}
    assert row["fgsm"] == numbers["iterative_vs_single_step"][0.2]["fgsm"]
    assert row["transfer"] == numbers["white_box_vs_transfer"][0.2]["transfer_fgsm"]
    assert row["square"] == numbers["gradient_free_vs_gradient"][0.2]["square"]
    assert set(row["verdicts"].values()) <= {"pass", "fail", "skipped"} and "confidence" not in row["verdicts"]
    assert len(masking.verdict_records({"cnn": checks})) == len(row["verdicts"])
    with pytest.raises(ValueError, match="available"):
        masking.lesson_row("cnn", checks, 0.3)
    skipped = masking_checks(tiny_model, x, y, epsilons=(0.2,), pgd_steps=2, square_queries=10)
    assert masking.lesson_row("cnn", skipped, 0.2)["transfer"] is None


def _row(name, fgsm, pgd, square, transfer, zero=0.0, verdicts=None):
    return {"model": name, "fgsm": fgsm, "pgd": pgd, "square": square, "transfer": transfer,
            "zero_gradient_fraction": zero, "verdicts": verdicts or {}}


def test_story_is_computed_from_the_rows():
    rows = [_row("D", 0.99, 0.40, 0.12, 0.31, zero=0.875, verdicts={"zero_gradients": "fail"}),
            _row("A", 0.83, 0.22, 0.80, 0.94), _row("G", 0.73, 0.70, 0.71, 0.65)]
    roles = {"D": "distill", "A": "fgsm_at", "G": "grad_y"}
    story = masking.masking_story(rows, eps=0.2, roles=roles, labels=LABELS)
    text = " ".join(story)
    assert "resisted best by **D** (99%)" in story[0]
    assert "the best score here" in story[1] and "Square leaves 12%" in story[1] and "88%" in story[1]
    assert "zero_gradients" in story[1]
    assert "PGD is 61 points below FGSM" in text
    assert "White-box FGSM > FGSM transferred from plain (65%)" in text, "G's FGSM beats its transfer number"
    story = masking.masking_story([_row("D", 0.30, 0.35, 0.40, None), _row("A", 0.80, 0.7, 0.8, None)],
                                  eps=0.1, roles=roles, labels=LABELS)
    assert "resisted best by **A**" in story[0] and "the best score" not in story[1]
    assert "no sign of masking" in story[1] and "None of its test images" in story[1]
    assert masking.masking_story([], eps=0.1, roles={}, labels=LABELS) == []


def test_the_story_is_headed_by_whoever_wins_fgsm():
    roles = {"D": "distill", "A": "fgsm_at", "G": "grad_y"}
    distill_best = [_row("D", 0.99, 0.40, 0.12, 0.31), _row("A", 0.83, 0.22, 0.80, 0.94)]
    assert masking.story_heading(distill_best, roles) == "Why distillation “wins” FGSM"
    fgsm_at_best = [_row("D", 0.70, 0.40, 0.12, 0.31), _row("A", 0.91, 0.17, 0.80, 0.94)]
    assert masking.story_heading(fgsm_at_best, roles) == "Why A “wins” FGSM, and what the other attacks say"
    honest = [_row("G", 0.9, 0.9, 0.9, 0.9)]  # FGSM is its strongest attack: nothing to explain away
    assert masking.story_heading(honest, roles) == masking.story_heading([], roles) == "What the numbers say"


def test_morph_grid_and_judge_rates(tiny_model, linear_model, synthetic):
    x, y = synthetic
    result = morphs.morph_grid(tiny_model, x, y, steps=2, step_size=0.1, judge=linear_model)
    k = len(result["classes"])
    assert result["grid"].shape == (k, k, *x.shape[1:]) and result["classes"] == list(range(k))
    off = [(r, c) for r in range(k) for c in range(k) if r != c]
    expected = sum(result["judge_pred"][r][c] == c for r, c in off) / len(off)
    assert result["judge_target_rate"] == pytest.approx(expected)
    assert result["model_target_rate"] == pytest.approx(sum(result["model_pred"][r][c] == c for r, c in off) / len(off))
    alone = morphs.morph_grid(tiny_model, x, y, steps=2, step_size=0.1)
    assert alone["judge_pred"] is None and alone["judge_target_rate"] is None
    rates = morphs.judge_rates(tiny_model, linear_model, x[:20], y[:20], steps=2)
    assert rates["n"] == 20 and 0 <= rates["judge_target_rate"] <= 1
    row = morphs.morph_row("cnn", result, rates)
    assert row["grid: judge says target"] == result["judge_target_rate"] and row["images"] == 20
    with pytest.raises(ValueError, match="every class"):
        morphs.morph_grid(tiny_model, x[y != 3], y[y != 3])


def test_figures_build(pair, tiny_model, synthetic):
    models, x, y = pair
    records = transfer.transfer_cells(models, x, y, method="fgsm", eps=0.2)
    fig = lesson_figures.transfer_figure(records, names={"cnn": "CNN"}, paper={("cnn", "linear"): 0.5},
                                      selected=("cnn", "linear"))
    assert "paper 50%" in fig.data[0].text[0][1] and "paper" not in fig.data[0].text[1][0]
    assert list(fig.data[0].x) == ["CNN", "linear"] and len(fig.layout.shapes) == 1
    examples = transfer.cell_examples(models["cnn"], models["linear"], x, y, method="fgsm", eps=0.2, limit=4)
    assert len(lesson_figures.cell_figure(examples).data) == 3 * 4
    rows = [_row("D", 0.9, 0.4, 0.1, None)]
    assert len(lesson_figures.masking_bars(rows, labels=LABELS).data) == 4
    grid = morphs.morph_grid(tiny_model, *synthetic, steps=1, step_size=0.1)
    fig = lesson_figures.morph_figure(grid)
    k = len(grid["classes"])
    assert len(fig.layout.annotations) == k * (k - 1)
    with pytest.raises(ValueError):
        lesson_figures.transfer_figure([], names={})
