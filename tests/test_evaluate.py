"""Evaluation: robust accuracy, transfer matrices, JSMA / judge statistics and masking checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradreg.attacks import ATTACKS, check_epsilons
from gradreg.evaluation.accuracy import accuracy, jsma_stats, judge_target_rate, robust_accuracy
from gradreg.evaluation.masking import confidence_stats, gradient_stats, masking_checks
from gradreg.evaluation.transfer import transfer_matrix

FAST = {"pgd": {"steps": 3}, "bim": {"steps": 3}, "iterated_tgsm": {"steps": 2}, "square": {"queries": 10},
        "jsma": {"gamma": 0.02}, "apgd": {"steps": 3}, "apgd_t": {"steps": 3, "targets": 1},
        "ensemble": {"steps": 3, "targets": 1, "queries": 10}}
CHECKS = ["iterative_vs_single_step", "white_box_vs_transfer", "large_eps", "gradient_free_vs_gradient",
          "single_step_illusion", "zero_gradients", "confidence", "input_gradients"]


class Scaled(nn.Module):
    """A model whose logits are multiplied by ``factor``: a stand-in for a distilled network tested at T = 1, whose
    softmax saturates so that the float32 input gradient is exactly zero (PAPER.md §6, §8)."""

    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.model(x) * self.factor


class CountingGradForwards(nn.Module):
    """Counts forward passes run with autograd on, i.e. the gradient computations of an attack."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += torch.is_grad_enabled()
        return self.model(x)


@pytest.fixture
def data(synthetic):
    x, y = synthetic
    return x[:40], y[:40]


@pytest.mark.parametrize("method", sorted(ATTACKS))
def test_robust_accuracy_at_zero_equals_accuracy(tiny_model, data, method):
    x, y = data
    (record,) = robust_accuracy(tiny_model, x, y, method=method, epsilons=[0.0], batch_size=16, **FAST.get(method, {}))
    assert record["accuracy"] == accuracy(tiny_model, x, y)
    assert record["method"] == method and record["eps"] == 0.0 and record["n"] == len(x)
    assert ("target_rate" in record) == ATTACKS[method].targeted


def test_fgsm_accuracy_non_increasing_on_linear_model(linear_model, synthetic):
    x, y = synthetic
    y = linear_model(x).argmax(1).detach()  # labels the model gets right, so there is something to lose
    records = robust_accuracy(linear_model, x, y, method="fgsm", epsilons=[0, 0.01, 0.02, 0.05, 0.1, 0.2])
    accuracies = [r["accuracy"] for r in records]
    assert accuracies[0] == 1.0 and accuracies[-1] < 0.5
    assert all(a >= b for a, b in zip(accuracies, accuracies[1:]))


def test_robust_accuracy_is_batch_size_independent_for_deterministic_attacks(tiny_model, data):
    x, y = data
    a = robust_accuracy(tiny_model, x, y, method="bim", epsilons=[0.1], batch_size=7, steps=3)
    b = robust_accuracy(tiny_model, x, y, method="bim", epsilons=[0.1], batch_size=40, steps=3)
    assert a[0]["accuracy"] == b[0]["accuracy"]


@pytest.mark.parametrize("epsilons", [[], [-0.1], [math.nan], "0.1", [True]])
def test_invalid_epsilons(tiny_model, data, epsilons):
    with pytest.raises(ValueError):
        robust_accuracy(tiny_model, *data, method="fgsm", epsilons=epsilons)


def test_invalid_method_and_target(tiny_model, data):
    with pytest.raises(ValueError, match="valid: apgd, apgd_t, bim"):
        robust_accuracy(tiny_model, *data, method="cw", epsilons=[0.1])
    with pytest.raises(ValueError, match="target"):
        robust_accuracy(tiny_model, *data, method="pgd", epsilons=[0.1], target="next")
    with pytest.raises(ValueError, match="valid"):
        robust_accuracy(tiny_model, *data, method="tgsm", epsilons=[0.1], target="bogus")


def test_progress_callback_counts_chunks(tiny_model, data):
    seen = []
    robust_accuracy(tiny_model, *data, method="fgsm", epsilons=[0.1, 0.2], batch_size=16,
                    on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]


@pytest.mark.parametrize("method, params", [("fgsm", {}), ("tgsm", {}), ("pgd", {"steps": 3})])
def test_transfer_diagonal_equals_white_box(tiny_model, linear_model, data, method, params):
    x, y = data
    models = {"tiny": tiny_model, "linear": linear_model}
    eps = [0.0, 0.1, 0.3]
    records = transfer_matrix(models, x, y, method=method, epsilons=eps, batch_size=16, **params)
    assert len(records) == 2 * 2 * len(eps)
    for name, model in models.items():
        white = robust_accuracy(model, x, y, method=method, epsilons=eps, batch_size=16, **params)
        diagonal = [r for r in records if r["source"] == name and r["model"] == name]
        assert all(r["white_box"] for r in diagonal)
        assert [r["accuracy"] for r in diagonal] == [r["accuracy"] for r in white]
        assert [r.get("target_rate") for r in diagonal] == [r.get("target_rate") for r in white]
    clean = {r["model"]: r["accuracy"] for r in records if r["eps"] == 0.0}
    assert clean == {name: accuracy(model, x, y) for name, model in models.items()}


def test_transfer_computes_single_step_direction_once(tiny_model, data):
    x, y = data
    counting = CountingGradForwards(tiny_model).eval()
    transfer_matrix({"source": counting}, x, y, method="fgsm", epsilons=[0.1, 0.2, 0.3, 0.4], batch_size=40)
    assert counting.calls == 1
    counting.calls = 0
    transfer_matrix({"source": counting}, x, y, method="bim", epsilons=[0.1, 0.2], batch_size=40, steps=2)
    assert counting.calls == 2 * 2


def test_jsma_stats(tiny_model, data):
    stats = jsma_stats(tiny_model, data[0][:16], data[1][:16], gamma=0.05)
    assert set(stats) == {"success_rate", "mean_l0", "mean_l0_fraction", "n"}
    assert 0 <= stats["success_rate"] <= 1 and stats["n"] == 16
    if stats["success_rate"] > 0:
        assert 0 < stats["mean_l0_fraction"] <= 0.05


def test_judge_agrees_with_itself(tiny_model, data):
    x, y = data
    result = judge_target_rate(tiny_model, tiny_model, x, y, method="iterated_tgsm", step_size=0.1, steps=3)
    assert result["judge_target_rate"] == result["model_target_rate"] > 0
    with pytest.raises(ValueError, match="targeted"):
        judge_target_rate(tiny_model, tiny_model, x, y, method="fgsm")


def test_statistics(linear_model, tiny_model, data):
    x, y = data
    grads = gradient_stats(linear_model, x, y)
    assert grads["zero_example_fraction"] == 0 and grads["norm_min"] > 0
    assert grads["norm_q25"] <= grads["norm_median"] <= grads["norm_q75"] <= grads["norm_max"]
    confidence = confidence_stats(tiny_model, x)
    assert confidence["other_logp_mean"] < confidence["predicted_logp_mean"] <= 0
    saturated = confidence_stats(Scaled(tiny_model, 1e4).eval(), x)
    assert saturated["saturated_fraction"] > 0.5 and saturated["other_logp_mean"] < -100


def test_tiny_gradients_are_not_counted_as_zero(linear_model, data):
    with torch.no_grad():
        linear_model[1].weight.mul_(1e-37)  # input gradients of ~1e-40: denormal in float32, but not zero
    grads = gradient_stats(linear_model, *data)
    assert grads["zero_example_fraction"] == 0 and grads["norm_min"] > 0


def _checks(model, x, y, **kw):
    return masking_checks(model, x, y, epsilons=[0.1, 0.3], large_eps=0.5, pgd_steps=3, square_queries=20,
                          batch_size=40, **kw)


def test_masking_checks_shape(tiny_model, linear_model, data):
    records = _checks(tiny_model, *data)
    assert [r["check"] for r in records] == CHECKS
    assert {r["verdict"] for r in records} <= {"pass", "fail", "skipped", "info"}
    assert records[1]["verdict"] == "skipped"
    assert all(isinstance(r["detail"], str) and isinstance(r["numbers"], dict) for r in records)
    with_source = _checks(tiny_model, *data, source=linear_model)
    assert with_source[1]["verdict"] in {"pass", "fail"} and set(with_source[1]["numbers"]) == {0.1, 0.3}


def test_masking_checks_catch_gradient_underflow(tiny_model, data):
    """Saturated logits (distillation's failure mode) zero the input gradient: the checks must say so."""
    x, y = data
    verdicts = {r["check"]: r["verdict"] for r in _checks(Scaled(tiny_model, 1e4).eval(), x, y)}
    assert verdicts["zero_gradients"] == "fail"
    assert verdicts["gradient_free_vs_gradient"] == "fail" or verdicts["large_eps"] == "fail"


def test_check_epsilons():
    assert check_epsilons((0, 0.5)) == [0.0, 0.5]
    with pytest.raises(ValueError):
        check_epsilons(0.1)


@pytest.mark.parametrize("fgsm,pgd,verdict", [(0.95, 0.01, "fail"), (0.28, 0.0, "pass"), (0.99, 0.92, "pass")])
def test_single_step_illusion_flags_fgsm_far_above_pgd(fgsm, pgd, verdict):
    from gradreg.evaluation.masking import _single_step_check

    check = _single_step_check({"fgsm": {0.3: fgsm}, "pgd": {0.3: pgd}}, 0.3, 0.3)
    assert check["verdict"] == verdict and check["numbers"] == {"eps": 0.3, "fgsm": fgsm, "pgd": pgd}
