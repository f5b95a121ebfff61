"""The strong-attack table: clean, FGSM, PGD with restarts and the ensemble per model and ε, with timings."""

from __future__ import annotations

import pytest

from gradreg.evaluation.robustness import robustness_records
from gradreg.paper.report_saved import robustness_section

FAST = {"pgd_steps": 3, "restarts": 2, "steps": 4, "targets": 1, "queries": 20}


@pytest.fixture(scope="module")
def records(tiny_model, synthetic):
    x, y = synthetic
    return robustness_records({"plain": tiny_model}, x[:24], y[:24], epsilons=(0.05, 0.3), **FAST)


def test_one_record_per_model_and_eps_with_timings(records):
    assert [(r["model"], r["eps"]) for r in records] == [("plain", 0.05), ("plain", 0.3)]
    for r in records:
        assert r["n"] == 24 and all(r[f"seconds_{k}"] >= 0 for k in ("fgsm", "pgd", "ensemble"))
        assert all(0 <= r[k] <= r["clean"] for k in ("fgsm", "pgd", "ensemble", "apgd_ce", "apgd_t", "square"))


def test_the_ensemble_is_cumulative_and_the_worst_case_is_the_minimum(records):
    for r in records:
        assert r["apgd_ce"] >= r["apgd_t"] >= r["square"] == r["ensemble"]
        assert r["worst"] == min(r["fgsm"], r["pgd"], r["ensemble"])
    assert records[1]["ensemble"] <= records[0]["ensemble"]  # a larger ball breaks at least as many


def test_the_report_section_states_its_checks(records):
    meta = {"n": 24, "pgd_steps": 3, "restarts": 2, "ensemble": {"steps": 4, "targets": 1, "queries": 20},
            "device": "cpu", "threads": 1, "seconds": 1.0}
    text = robustness_section({"meta": meta, "records": records})
    assert "| Normal | 0.05 |" in text and "ensemble accuracy never rises with ε | pass" in text
    assert "Not run" in robustness_section({})


def test_bad_arguments_are_refused(tiny_model, synthetic):
    x, y = synthetic
    with pytest.raises(ValueError, match="restarts"):
        robustness_records({"m": tiny_model}, x[:4], y[:4], restarts=0)
    with pytest.raises(ValueError, match="eps"):
        robustness_records({"m": tiny_model}, x[:4], y[:4], epsilons=(-0.1,))
