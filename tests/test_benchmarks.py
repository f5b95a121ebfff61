"""The benchmark command runs: ``python -m benchmarks --quick`` writes JSON with its context and one row per figure.

The benchmark itself is not part of the test run; these only check that it works (the UI and cold-start sections,
which start Streamlit, are marked slow)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.__main__ import main

ROW_KEYS = {"section", "what", "peer", "ratio", "unit", "target", "met", "seconds", "peer_seconds", "note"}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, *args: str) -> dict:
    out = tmp_path / "result.json"
    assert main(["--quick", "--device", "cpu", "--out", str(out), *args]) == 0
    return json.loads(out.read_text())


def test_quick_run_writes_the_table_and_json(tmp_path, capsys):
    result = _run(tmp_path, "--only", "training,attacks,saliency,zoo", "--threads", "1")
    assert {"machine", "versions", "device", "torch_threads", "rows", "table", "skipped", "raw"} <= set(result)
    assert result["device"]["type"] == "cpu" and result["torch_threads"] == 1
    assert result["versions"]["torch"] == torch.__version__
    sections = {r["section"] for r in result["rows"]}
    assert sections == {"training", "attacks", "saliency", "zoo"}
    for r in result["rows"]:
        assert set(r) == ROW_KEYS
        assert r["met"] in (True, False, None)
        assert r["ratio"] is None or r["ratio"] > 0
    training = [r for r in result["rows"] if r["section"] == "training"]
    assert {r["peer"] for r in training} >= {"plain step", "straightforward grad_y", "straightforward grad_fd"}
    assert "| section | figure |" in capsys.readouterr().out


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--quick", "--only", "nope", "--out", str(tmp_path / "r.json")])
    assert err.value.code == 2


@pytest.mark.slow
def test_ui_and_cold_start_sections_run(tmp_path, monkeypatch, tiny_zoo):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path / "user"))
    result = _run(tmp_path, "--only", "ui,coldstart")
    assert {r["section"] for r in result["rows"]} == {"ui", "cold start"}
    assert all(r["seconds"] > 0 for r in result["rows"])


@pytest.mark.slow
def test_sweeps_section_times_serial_and_ray(tmp_path):
    result = _run(tmp_path, "--only", "sweeps")
    rows = [r for r in result["rows"] if r["section"] == "sweeps"]
    assert len(rows) == 2 and all(r["seconds"] > 0 and r["peer_seconds"] > 0 for r in rows)
    assert result["raw"]["sweeps"]["trials"] == 2


@pytest.mark.slow
def test_first_visit_section_times_a_fresh_process_per_page(tmp_path):
    from benchmarks.first_visit import pages

    assert ("pages/home.py", "Home") in pages() and len(pages()) >= 13  # read from app.py
    result = _run(tmp_path, "--only", "firstvisit")  # --quick: Home only, no browser
    warm, cold = result["rows"]
    assert warm["section"] == "first visit" and warm["seconds"] > 0 and warm["target"] == "≤ 0.5 s"
    assert "started server" in warm["what"] and "cold process" in cold["what"] and cold["met"] is None
    assert "error" not in result["raw"]["firstvisit"]["warm"]["home"]["warm"], "the warm-up ran to its end"
