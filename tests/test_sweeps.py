"""Sweeps: sweep files expand into the right trials and refuse bad ones by name; trials run serially and on a real
embedded Ray (2 CPUs), a re-run trains nothing, a failing trial is reported while the others finish, and both
backends write the same results table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gradreg.cli.main import main
from gradreg.core.config import TrainConfig, config_id
from gradreg.paper.zoo import zoo_configs
from gradreg.sweeps.results import RESULTS, format_summary, read_results, summarize
from gradreg.sweeps.runner import run_sweep
from gradreg.sweeps.spec import SweepError, expand, load_sweep, stages

ROOT = Path(__file__).resolve().parent.parent
TINY = {"dataset": "mnist", "model": "mlp", "recipe": "torch", "epochs": 1, "n_train": 200, "batch_size": 50}


def tiny_sweep(*roles: dict, **sweep) -> dict:
    return {"sweep": {"n_eval": 32, "epsilons": [0.1], "reference": "plain"} | sweep, "grid": dict(TINY),
            "role": [{"name": "plain"}, *roles]}


# --- expansion ---------------------------------------------------------------------------------------------------

def test_smoke_file_expands_into_two_trials_the_second_waiting_for_the_reference():
    sweep = load_sweep(ROOT / "sweeps" / "smoke.toml")
    plain, grad_y = sweep.trials
    assert sweep.name == "smoke" and (plain.name, grad_y.name) == ("plain", "grad_y")
    assert grad_y.config == TrainConfig(dataset="mnist", model="small_cnn", epochs=1, n_train=1000, batch_size=64,
                                        regularizer="grad_y", lam=10.0)  # the authors' recipe, TOML's 10 is 10.0
    assert grad_y.after == ("plain",) and grad_y.reference == "plain" and plain.after == ()
    assert [[t.name for t in wave] for wave in stages(sweep.trials)] == [["plain"], ["grad_y"]]


def test_paper_file_is_the_papers_grid_and_shares_ids_with_the_paper_zoo_preset():
    sweep = load_sweep(ROOT / "sweeps" / "paper.toml")
    assert len(sweep.trials) == 2 * 3 * (1 + 10 + 5 + 5)  # datasets × seeds × (plain, λ grids, 5 other roles)
    assert len({t.id for t in sweep.trials}) == len(sweep.trials)
    by_name = {t.name: t for t in sweep.trials}
    zoo = zoo_configs("mnist", preset="paper")
    for zoo_name, trial_name in (("plain", "plain-mnist-seed0"), ("grad_y_110", "grad_y-mnist-seed0-lam110"),
                                 ("fgsm_at", "fgsm_at-mnist-seed0"), ("pgd_at", "pgd_at-mnist-seed0")):
        assert by_name[trial_name].id == config_id(zoo[zoo_name])  # the same model, whichever way it is asked for
    refs = {t.reference for t in sweep.trials if t.config.dataset == "fashion_mnist"}
    assert refs == {None, "plain-fashion_mnist-seed0"}  # each dataset's transfer comes from its own plain model


def test_axes_multiply_and_roles_override_the_grid():
    sweep = expand(tiny_sweep({"name": "gr", "regularizer": "grad_y", "lam": [1, 10], "epochs": 2})
                   | {"grid": TINY | {"seed": [0, 1]}})
    names = [t.name for t in sweep.trials]
    assert names == ["plain-seed0", "plain-seed1", "gr-seed0-lam1", "gr-seed0-lam10", "gr-seed1-lam1",
                     "gr-seed1-lam10"]
    assert {t.config.epochs for t in sweep.trials if t.role == "gr"} == {2}
    assert all(t.after == ("plain-seed0",) for t in sweep.trials if t.name != "plain-seed0")


@pytest.mark.parametrize("change, words", [
    ({"grid": TINY | {"lamda": 1}}, ["[grid]", "'lamda'", "valid:", "lam"]),
    ({"role": [{"name": "plain", "colour": "red"}]}, ["role 'plain'", "'colour'"]),
    ({"sweep": {"nevals": 3}}, ["[sweep]", "'nevals'"]),
    ({"extra": {}}, ["the file", "'extra'"]),
    ({"role": [{"name": "plain"}, {"name": "gr", "regularizer": "grad_y", "lam": -1}]}, ["gr", "lam", ">= 0"]),
    ({"role": [{"name": "plain"}, {"name": "gr", "regularizer": "grad_y", "lam": float("nan")}]}, ["lam"]),
    ({"grid": TINY | {"seed": []}}, ["grid.seed", "empty"]),
    ({"role": []}, ["no [[role]]"]),
    ({"role": [{"name": "plain"}, {"name": "plain"}]}, ["repeat"]),
    ({"role": [{"name": "a"}]}, ["sweep.reference", "'plain'", "roles: a"]),
    ({"grid": TINY | {"model": "resnet"}}, ["unknown model 'resnet'", "valid"]),
    ({"grid": TINY | {"recipe": "mine"}}, ["unknown recipe", "authors"]),
    ({"sweep": {"epsilons": [0.1, 2.0]}}, ["sweep.epsilons"]),
    ({"sweep": {"n_eval": -1}}, ["sweep.n_eval"]),
    ({"role": [{"name": "plain"}, {"name": "x", "seed": [0, 0]}]}, ["repeats a value"]),
    ({"role": [{"name": "plain"}, {"name": "same"}]}, ["same model"]),
])
def test_bad_sweep_files_are_refused_naming_the_field(change, words):
    with pytest.raises(SweepError) as err:
        expand(tiny_sweep() | change)
    assert all(word in str(err.value) for word in words), str(err.value)


def test_unreadable_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(SweepError, match="cannot read"):
        load_sweep(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[grid\nmodel = ")
    with pytest.raises(SweepError, match="bad.toml: not valid TOML"):
        load_sweep(tmp_path / "bad.toml")


def test_cli_refuses_a_bad_file_with_exit_code_2(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[grid]\nlam = -1\nregularizer = "grad_y"\n[[role]]\nname = "x"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(tmp_path / "s.toml"), "--dry-run"])
    assert exit_.value.code == 2 and "lam must be a finite number >= 0" in capsys.readouterr().err


# --- running -----------------------------------------------------------------------------------------------------

def _failing() -> dict:
    """A real failure: the 'idx' dataset reads the folder in $GRADREG_IDX_DIR, unset here."""
    return {"name": "broken", "dataset": "idx"}


def _runnable(tmp_path: Path) -> list:
    return list(expand(tiny_sweep({"name": "gr", "regularizer": "grad_y", "lam": 1.0}, _failing())).trials)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    os.environ.pop("GRADREG_IDX_DIR", None)
    storage = tmp_path_factory.mktemp("serial")
    events = []
    rows = run_sweep(_runnable(storage), storage, backend="serial", cpus_per_trial=1,
                     on_event=lambda event, details: events.append((event, details["trial"])))
    return storage, rows, events


def test_serial_sweep_trains_reports_a_failure_and_writes_the_table(serial_run):
    storage, rows, events = serial_run
    by_name = {row["trial"]: row for row in rows}
    assert by_name["broken"]["status"] == "failed" and "GRADREG_IDX_DIR" in by_name["broken"]["error"]
    for name in ("plain", "gr"):
        row = by_name[name]
        assert row["status"] == "done" and row["trained"] and row["test_accuracy"] > 0.3
        assert (storage / "checkpoints" / f"{row['id']}.safetensors").is_file()
        assert row["n_eval"] == 32 and 0 <= row["fgsm_0.1"] <= row["clean"]
    assert by_name["gr"]["transfer_fgsm_0.1"] is not None and "transfer_fgsm_0.1" not in by_name["plain"]
    assert read_results(storage) == rows
    assert ("start", "plain") in events and ("failed", "broken") in events and ("done", "gr") in events


def test_a_second_serial_run_trains_nothing(serial_run):
    storage, first, _ = serial_run
    stamps = {p: p.stat().st_mtime_ns for p in (storage / "checkpoints").glob("*.safetensors")}
    again = run_sweep(_runnable(storage), storage, backend="serial", cpus_per_trial=1)
    assert [r["trained"] for r in again if r["status"] == "done"] == [False, False]
    assert stamps == {p: p.stat().st_mtime_ns for p in (storage / "checkpoints").glob("*.safetensors")}
    assert _metrics(again) == _metrics(first)


def _metrics(rows: list[dict]) -> dict:
    skip = {"seconds", "train_seconds", "host", "backend", "finished", "trained"}
    return {row["trial"]: {k: v for k, v in row.items() if k not in skip} for row in rows}


def test_ray_backend_gives_the_serial_table_and_a_rerun_trains_nothing(serial_run, tmp_path):
    ray = pytest.importorskip("ray")
    storage, serial_rows, _ = serial_run
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = run_sweep(_runnable(tmp_path), tmp_path, backend="ray", cpus_per_trial=1)
        again = run_sweep(_runnable(tmp_path), tmp_path, backend="ray", cpus_per_trial=1)
        for resources in ({"gpus_per_trial": 1}, {"cpus_per_trial": 3}):  # Tune would wait for them forever
            with pytest.raises(ValueError, match="no node of this Ray"):
                run_sweep(_runnable(tmp_path), tmp_path / "never", backend="ray", **resources)
    finally:
        ray.shutdown()
    assert {r["trial"]: r["status"] for r in rows} == {"plain": "done", "gr": "done", "broken": "failed"}
    assert all(r["backend"] == "ray" for r in rows)
    assert "GRADREG_IDX_DIR" in next(r for r in rows if r["trial"] == "broken")["error"]
    done = lambda rs: {k: v for k, v in _metrics(rs).items() if k != "broken"}  # noqa: E731
    assert done(rows) == done(serial_rows)  # one thread each: the very same numbers, wherever they ran
    assert [r["trained"] for r in again if r["status"] == "done"] == [False, False]
    assert (tmp_path / RESULTS).is_file() and len(read_results(tmp_path)) == 3


def test_a_trial_waiting_for_a_failed_one_fails_with_that_reason(tmp_path):
    data = tiny_sweep({"name": "gr", "regularizer": "grad_y", "lam": 1.0}) | {"grid": TINY | {"dataset": "idx"}}
    os.environ.pop("GRADREG_IDX_DIR", None)
    rows = run_sweep(expand(data).trials, tmp_path, backend="serial")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "'plain', which it waits for, failed" in rows[1]["error"]


def test_the_dashboards_side_of_sweeps_never_imports_ray():
    import subprocess
    import sys

    code = "import sys, gradreg.ui.sweeps, gradreg.sweeps.results; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bad_resources_and_backends_are_refused(tmp_path):
    trials = expand(tiny_sweep()).trials
    for kwargs, words in (({"backend": "spark"}, "valid: ray, serial"), ({"cpus_per_trial": 0}, "cpus_per_trial"),
                          ({"gpus_per_trial": -1}, "gpus_per_trial"), ({"gpus_per_trial": 1.5}, "whole number"),
                          ({"backend": "ray", "on_batch": print}, "serial backend")):
        with pytest.raises(ValueError, match=words):
            run_sweep(trials, tmp_path, **kwargs)


# --- results -----------------------------------------------------------------------------------------------------

def test_summary_is_mean_and_sd_over_seeds():
    base = {"status": "done", "role": "gr", "dataset": "mnist", "lam": 10.0, "defence": "none"}
    rows = [base | {"trial": f"t{s}", "seed": s, "clean": c} for s, c in ((0, 0.9), (1, 0.8), (2, 1.0))]
    rows.append({"trial": "x", "status": "failed", "role": "gr", "seed": 3, "error": "boom"})
    (entry,) = summarize(rows)
    assert entry["n"] == 3 and entry["seeds"] == [0, 1, 2]
    assert entry["clean"] == pytest.approx(0.9) and entry["clean_sd"] == pytest.approx(0.1)
    assert "90.0 ± 10.0 %" in format_summary([entry])


def test_summary_command_prints_the_table_and_the_failures(serial_run, capsys):
    storage, _, _ = serial_run
    assert main(["sweep", "--summary", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "gr" in out and "failed: broken" in out and "%" in out


@pytest.mark.parametrize("text, words", [("not json\n", "line 1: not JSON"), ('{"a": 1}\n', "not a trial's row"),
                                         ("", None)])
def test_a_broken_results_file_is_refused_by_line(tmp_path, text, words):
    (tmp_path / RESULTS).write_text(text)
    if words is None:
        assert read_results(tmp_path) == []
    else:
        with pytest.raises(ValueError, match=words):
            read_results(tmp_path)
    with pytest.raises(ValueError, match="no results table"):
        read_results(tmp_path / "nowhere")


def test_results_rows_are_plain_json(serial_run):
    storage, _, _ = serial_run
    for line in (storage / RESULTS).read_text().splitlines():
        json.loads(line)  # NaN and Infinity are refused on write (allow_nan=False)


def test_a_sweep_stopped_midway_resumes_where_it_stopped(tmp_path):
    import threading

    stop = threading.Event()
    trials = expand(tiny_sweep({"name": "gr", "regularizer": "grad_y", "lam": 1.0})).trials

    def on_event(event, details):
        if event == "done":
            stop.set()  # as Ctrl-C would, once the first trial has finished

    first = run_sweep(trials, tmp_path, backend="serial", stop=stop, on_event=on_event)
    assert [r["status"] for r in first] == ["done", "failed"] and "stopped" in first[1]["error"]
    assert not (tmp_path / "checkpoints" / f"{trials[1].id}.safetensors").exists(), "a stopped run saves nothing"
    again = run_sweep(trials, tmp_path, backend="serial")
    assert [(r["trial"], r["trained"]) for r in again] == [("plain", False), ("gr", True)]
