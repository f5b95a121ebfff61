"""Saliency metrics: expected values on hand-built maps, similarity properties, the randomization check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradreg.core.models import build_model
from gradreg.explain.metrics import (alignment, curve_auc, deletion_curve, gini, gradient_norm, insertion_curve,
                                     metric_records, saliency_report, stroke_fraction, stroke_mass, total_variation)
from gradreg.explain.randomization import map_similarity, randomization_check
from gradreg.explain.saliency import saliency

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _map(values) -> torch.Tensor:
    """A hand-built batch of one map, (1, 1, H, W)."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


def test_total_variation_on_hand_built_maps():
    n = 28
    checker = (torch.arange(n)[:, None] + torch.arange(n)[None, :]) % 2 * 2.0 - 1  # ±1 checkerboard
    spike = torch.zeros(n, n)
    spike[10, 10] = 5.0
    tv = total_variation(torch.stack([torch.ones(n, n), checker, spike, torch.zeros(n, n)])[:, None])
    torch.testing.assert_close(tv, torch.tensor([0.0, 4 * (n - 1) / n, 4.0, 0.0]))
    torch.testing.assert_close(total_variation(3.7 * checker[None, None]), tv[1:2])  # scale-invariant


def test_stroke_mass_and_fraction():
    x = _map([[0.0, 1.0], [0.9, 0.2]])
    a = _map([[1.0, -2.0], [1.0, 0.0]])  # |a| on strokes: 3 of 4
    torch.testing.assert_close(stroke_mass(a, x), torch.tensor([0.75]))
    torch.testing.assert_close(stroke_mass(a, x, threshold=0.95), torch.tensor([0.5]))
    torch.testing.assert_close(stroke_fraction(x), torch.tensor([0.5]))
    assert stroke_mass(torch.zeros_like(x), x).item() == 0.0


def test_alignment():
    x = _map([[0.0, 1.0], [0.5, 0.2]])
    orthogonal = _map([[3.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(alignment(torch.cat([x, -2 * x, orthogonal]), x.expand(3, -1, -1, -1)),
                               torch.tensor([1.0, 1.0, 0.0]))
    assert alignment(torch.zeros_like(x), x).item() == 0.0


def test_gini_on_hand_built_maps():
    maps = torch.stack([_map([[1.0, 1.0], [1.0, 1.0]]), _map([[0.0, 0.0], [0.0, -4.0]]),
                        _map([[1.0, 0.0], [0.0, 1.0]])])[:, 0]
    torch.testing.assert_close(gini(maps), torch.tensor([0.0, 0.75, 0.5]))


def test_curve_auc():
    torch.testing.assert_close(curve_auc(torch.stack([torch.ones(11), torch.linspace(1, 0, 11)])),
                               torch.tensor([1.0, 0.5]))


def test_deletion_and_insertion_prefer_the_faithful_map(linear_model, synthetic):
    x, y = synthetic[0][:16], synthetic[1][:16]
    exact = saliency(linear_model, x, y, "integrated_gradients")  # = x ⊙ W[y]: exact logit contributions
    deletion = deletion_curve(linear_model, x, exact, y, order="signed")
    insertion = insertion_curve(linear_model, x, exact, y, order="signed")
    with torch.no_grad():
        p_x = F.softmax(linear_model(x), 1).gather(1, y[:, None])[:, 0]
        p_0 = F.softmax(linear_model(torch.zeros_like(x)), 1).gather(1, y[:, None])[:, 0]
    assert deletion.shape == insertion.shape == (16, 29)
    torch.testing.assert_close(deletion[:, 0], p_x)
    torch.testing.assert_close(deletion[:, -1], p_0)
    torch.testing.assert_close(insertion[:, 0], p_0)
    torch.testing.assert_close(insertion[:, -1], p_x)
    assert curve_auc(deletion).mean() < curve_auc(deletion_curve(linear_model, x, -exact, y, order="signed")).mean()
    assert curve_auc(insertion).mean() > curve_auc(insertion_curve(linear_model, x, -exact, y, order="signed")).mean()


@pytest.mark.parametrize("metric", ["spearman", "ssim"])
def test_map_similarity_properties(metric):
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 1, 28, 28, generator=generator)
    torch.testing.assert_close(map_similarity(a, a, metric), torch.ones(5))
    torch.testing.assert_close(map_similarity(a, b, metric), map_similarity(b, a, metric))
    torch.testing.assert_close(map_similarity(3.5 * a, 0.2 * b, metric), map_similarity(a, b, metric))
    assert (map_similarity(a, b, metric).abs() < 0.3).all()  # independent noise is dissimilar


def test_spearman_matches_hand_values_with_ties():
    a, b = _map([[1.0, 2.0], [3.0, 4.0]]), _map([[1.0, 3.0], [2.0, 4.0]])
    torch.testing.assert_close(map_similarity(a, b), torch.tensor([0.8]))  # 1 − 6·Σd² / (n(n² − 1))
    tied = _map([[1.0, 1.0], [2.0, 3.0]])
    expected = np.corrcoef([1.5, 1.5, 3, 4], [1, 3, 2, 4])[0, 1]  # ties share their mean rank
    torch.testing.assert_close(map_similarity(tied, b), torch.tensor([expected], dtype=torch.float32))
    torch.testing.assert_close(map_similarity(a, -a), torch.tensor([-1.0]))


def test_map_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match="spearman"):
        map_similarity(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "pearson")
    with pytest.raises(ValueError, match="shape"):
        map_similarity(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))


def test_gradient_norm_matches_closed_form(linear_model, synthetic):
    x, y = synthetic[0][:8], synthetic[1][:8]
    W, b = linear_model[1].weight.detach(), linear_model[1].bias.detach()
    p = F.softmax(x.flatten(1) @ W.T + b, 1)
    torch.testing.assert_close(gradient_norm(linear_model, x, y), ((p - F.one_hot(y, 10).float()) @ W).norm(dim=1))


def test_randomization_check_separates_trained_from_randomized(tiny_model, synthetic):
    x = synthetic[0][:16]
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    records = randomization_check(tiny_model, x, "pred")
    layers = [name for name, m in tiny_model.named_modules() if list(m.parameters(recurse=False))]
    assert [r["stage"] for r in records] == list(range(len(layers) + 1))
    assert [r["layer"] for r in records[1:]] == layers[::-1]  # top layer first
    assert {r["kind"] for r in records[1:]} >= {"Conv2d", "Linear"}
    from gradreg.viz.page_figures import randomization_curves

    ticks = randomization_curves({"m": records}).to_dict()["data"][0]["x"]
    assert ticks[0] == "(trained)" and ticks[1] == f"dense {layers[-1]}" and any(t.startswith("conv ") for t in ticks)
    assert records[0]["similarity"] == 1.0
    assert max(r["similarity"] for r in records[1:]) < 0.5  # input gradients depend on every layer's weights
    assert all(torch.equal(v, state[k]) for k, v in tiny_model.state_dict().items())  # ran on a copy
    assert records == randomization_check(tiny_model, x, "pred")  # seeded


def test_report_separates_trained_from_random_model(tiny_model, synthetic):
    x, y = synthetic[0][:32], synthetic[1][:32]
    trained = saliency_report(tiny_model, x, y, curve_steps=7)
    random = saliency_report(build_model("small_cnn").eval(), x, y, curve_steps=7, randomization=False)
    assert trained["stroke_mass"] > random["stroke_mass"] + 0.05
    assert trained["alignment"] > random["alignment"] + 0.1
    assert trained["insertion_auc"] > random["insertion_auc"]
    assert trained["n"] == 32 and 0 <= trained["randomization_similarity"] < 0.5
    assert "randomization_similarity" not in random


def test_metric_records_are_tidy_and_in_range(linear_model, synthetic):
    x, y = synthetic[0][:4], synthetic[1][:4]
    records = metric_records(linear_model, x, y, method="integrated_gradients", curve_steps=4, steps=8)
    assert [r["index"] for r in records] == [0, 1, 2, 3] and [r["label"] for r in records] == y.tolist()
    for r in records:
        assert 0 <= r["total_variation"] <= 4 and 0 <= r["gini"] <= 1
        assert all(0 <= r[k] <= 1 for k in ("stroke_mass", "stroke_fraction", "alignment", "deletion_auc",
                                             "insertion_auc"))
        assert all(isinstance(v, (int, float)) for v in r.values())
