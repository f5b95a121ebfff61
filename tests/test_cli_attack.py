"""The attack, transfer and masking subcommands: tables, CSV/JSON records, exit code 2 on bad arguments."""

from __future__ import annotations

import csv
import json

import pytest

from gradreg import TrainConfig, save, train
from gradreg.cli.main import main
from gradreg.training.checkpoints import list_checkpoints


@pytest.fixture(scope="module")
def tiny_path(tiny_ckpt_dir):
    (info,) = list_checkpoints(tiny_ckpt_dir)
    return str(info.path)


@pytest.fixture(scope="module")
def linear_path(tmp_path_factory):
    """A second checkpoint (linear model, one epoch on synthetic data) to transfer between."""
    root = tmp_path_factory.mktemp("linear")
    return str(save(train(TrainConfig(dataset="synthetic", model="linear", epochs=1, batch_size=64)), root))


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_attack_prints_table_and_writes_records(tiny_path, tmp_path, capsys):
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    assert main(["attack", "--checkpoint", tiny_path, "--method", "pgd", "--eps", "0", "0.1", "--steps", "3",
                 "--n", "40", "--device", "cpu", "--csv", str(out_csv), "--json", str(out_json)]) == 0
    table = capsys.readouterr().out
    assert "eps" in table and "accuracy" in table and "0.1" in table
    records = json.loads(out_json.read_text())
    assert [r["eps"] for r in records] == [0.0, 0.1] and all(r["n"] == 40 for r in records)
    assert records[0]["accuracy"] >= records[1]["accuracy"]
    rows = list(csv.DictReader(out_csv.open()))
    assert [float(r["accuracy"]) for r in rows] == [r["accuracy"] for r in records]


def test_targeted_attack_reports_target_rate(tiny_path, capsys):
    assert main(["attack", "--checkpoint", tiny_path, "--method", "tgsm", "--eps", "0.2", "--target", "random",
                 "--n", "20", "--device", "cpu"]) == 0
    assert "target_rate" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--method", "cw", "--eps", "0.1"], "invalid choice"),
    (["--method", "pgd", "--eps", "-0.1"], "finite number >= 0"),
    (["--method", "pgd", "--eps", "nan"], "finite number >= 0"),
    (["--method", "pgd", "--eps", "0.1", "--norm", "l1"], "invalid choice"),
    (["--method", "fgsm", "--eps", "0.1", "--steps", "3"], "fgsm does not take --steps"),
    (["--method", "pgd", "--eps", "0.1", "--target", "next"], "untargeted"),
    (["--method", "pgd", "--eps", "0.1", "--target", "first"], "invalid choice"),
])
def test_bad_attack_arguments_exit_2(tiny_path, capsys, argv, message):
    assert message in _fails(["attack", "--checkpoint", tiny_path, *argv], capsys)


def test_unknown_checkpoint_exits_2(capsys, tmp_path):
    assert "no checkpoint" in _fails(["attack", "--checkpoint", str(tmp_path / "nope"), "--method", "fgsm",
                                      "--eps", "0.1"], capsys)


def test_transfer_prints_matrix(tiny_path, linear_path, tmp_path, capsys):
    out_json = tmp_path / "t.json"
    assert main(["transfer", "--checkpoints", tiny_path, linear_path, "--method", "fgsm", "--eps", "0.1", "0.2",
                 "--n", "30", "--device", "cpu", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "[0]" in out and "[1]" in out and "diagonal = white-box" in out
    records = json.loads(out_json.read_text())
    assert len(records) == 2 * 2 * 2 and sum(r["white_box"] for r in records) == 4


def test_transfer_refuses_duplicates(tiny_path, capsys):
    assert "distinct" in _fails(["transfer", "--checkpoints", tiny_path, tiny_path, "--method", "fgsm",
                                 "--eps", "0.1"], capsys)


def test_masking_prints_verdicts(tiny_path, linear_path, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    assert main(["masking", "--checkpoint", tiny_path, "--source", linear_path, "--eps", "0.1", "--steps", "2",
                 "--queries", "10", "--n", "30", "--device", "cpu", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "iterative_vs_single_step" in out and "zero_gradients" in out
    records = json.loads(out_json.read_text())
    assert {r["verdict"] for r in records} <= {"pass", "fail", "skipped", "info"}
    assert records[1]["check"] == "white_box_vs_transfer" and records[1]["verdict"] != "skipped"
