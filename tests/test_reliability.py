"""Reliability and security: a checkpoint directory full of hostile files, two processes training one config, and
the fair-use caps of ``gradreg.limits``.

Each test proves one guarantee of README's "Reliability and security" section.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

from gradreg.core.config import TrainConfig
from gradreg.training import checkpoints, files
from gradreg.training.checkpoints import CheckpointError, list_checkpoints, load
from gradreg.training.files import lock
from gradreg.training.reuse import load_or_train
from gradreg.ui import limits

ROOT = Path(__file__).resolve().parent.parent


class _Payload:
    """Unpickling this creates a marker file: proof that a file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _meta(ckpt, **changes) -> dict:
    meta = {"format_version": checkpoints.FORMAT_VERSION, "config": ckpt.config.to_dict(),
            "model_kwargs": ckpt.model_kwargs, "history": [], "metrics": {"test_accuracy": 0.5}, "complete": True}
    return {**meta, **changes}


def _st(tensors: dict, meta: object) -> bytes:
    return st_save(tensors, metadata={"gradreg": meta if isinstance(meta, str) else json.dumps(meta)})


def hostile_files(good: checkpoints.Checkpoint, marker: Path) -> dict[str, bytes]:
    """File name → bytes: every kind of unusable file a stranger could drop into a checkpoint directory."""
    sd = good.state_dict
    data = _st(sd, _meta(good))
    zipped = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, zipped)
    first = next(k for k, v in sd.items() if v.is_floating_point() and v.dim() == 1)
    return {
        "payload.safetensors": pickle.dumps(_Payload(marker)),
        "payload.pkl": pickle.dumps(_Payload(marker)),
        "payload.pt": pickle.dumps(_Payload(marker), protocol=2),
        "torch_save.safetensors": zipped.getvalue(),
        "empty.safetensors": b"",
        "truncated_head.safetensors": data[:5],
        "truncated_tail.safetensors": data[:-100],
        "huge_header.safetensors": struct.pack("<Q", 10**15) + b"{}",
        "not_json.safetensors": struct.pack("<Q", 6) + b"{nope}",
        "binary_header.safetensors": struct.pack("<Q", 4) + b"\xff\xfe\x00\x01",
        "metadata_not_json.safetensors": _st(sd, "{this is not json"),
        "metadata_list.safetensors": _st(sd, [1, 2, 3]),
        "metadata_huge.safetensors": _st({"x": torch.zeros(1)}, "x" * (9 * 1024 * 1024)),
        "metrics_wrong_type.safetensors": _st(sd, _meta(good, metrics=["oops"])),
        "history_wrong_type.safetensors": _st(sd, _meta(good, history="oops")),
        "config_unknown_field.safetensors": _st(sd, _meta(good, config={**good.config.to_dict(), "evil": 1})),
        "config_bad_value.safetensors": _st(sd, _meta(good, config={**good.config.to_dict(), "lam": -1.0})),
        "config_unknown_model.safetensors": _st(sd, _meta(good, config={**good.config.to_dict(),
                                                                         "model": "os.system"})),
        "model_kwargs_bad.safetensors": _st(sd, _meta(good, model_kwargs={"num_classes": -5})),
        "foreign.safetensors": st_save({"embedding": torch.zeros(4, 3)}),
        "older_format.safetensors": _st(sd, _meta(good, format_version=0)),
        "newer_format.safetensors": _st(sd, _meta(good, format_version=99)),
        "wrong_shapes.safetensors": _st({**sd, first: torch.zeros(3, 3)}, _meta(good)),
        "missing_tensor.safetensors": _st({k: v for k, v in sd.items() if k != first}, _meta(good)),
        "wrong_dtype.safetensors": _st({**sd, first: sd[first].double()}, _meta(good)),
        "nan_weights.safetensors": _st({**sd, first: torch.full_like(sd[first], float("nan"))}, _meta(good)),
        "text.safetensors": b"hello, I am a text file\n" * 10,
    }


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory, tiny_ckpt_dir):
    """One good checkpoint plus every hostile kind; the marker file would appear if anything were unpickled."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root.parent / f"{root.name}.PWNED"
    (info,) = [i for i in list_checkpoints(tiny_ckpt_dir) if i.ok]
    good = load(info.path)
    checkpoints.save(good, root)
    for name, data in hostile_files(good, marker).items():
        (root / name).write_bytes(data)
    (root / ".killed-save.abc123.tmp").write_bytes(b"partial")  # a save killed mid-write
    (root / "a_directory.safetensors").mkdir()
    return root, marker, good


def test_hostile_files_are_listed_unusable_with_reasons_and_never_executed(hostile_dir):
    root, marker, good = hostile_dir
    infos = {i.path.name: i for i in list_checkpoints(root)}
    names = set(hostile_files(good, marker))
    assert set(infos) == names | {f"{good.id}.safetensors"}, "temp files and directories are not listed"
    assert infos[f"{good.id}.safetensors"].ok
    bad = {name: infos[name].reason for name in names}
    assert all(not infos[name].ok and reason for name, reason in bad.items()), bad
    assert "never unpickles" in bad["payload.safetensors"] and "never unpickles" in bad["torch_save.safetensors"]
    assert "format 0" in bad["older_format.safetensors"] and "without gradreg metadata" in bad["foreign.safetensors"]
    assert "wrong shape" in bad["wrong_shapes.safetensors"] and "dtype" in bad["wrong_dtype.safetensors"]
    for name in names:  # every refusal is a CheckpointError, never another exception
        with pytest.raises(CheckpointError):
            load(root / name)
    assert not marker.exists(), "a pickle payload was executed"


def test_nan_weights_are_refused_on_load(hostile_dir):
    root, _, _ = hostile_dir
    with pytest.raises(CheckpointError, match="non-finite"):
        load(root / "nan_weights.safetensors")


def test_cli_lists_a_hostile_directory(hostile_dir):
    root, marker, good = hostile_dir
    result = subprocess.run([sys.executable, "-m", "gradreg", "list", "--dir", str(root)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.count("UNUSABLE") == len(hostile_files(good, marker)) and good.id in result.stdout
    assert not marker.exists()


@pytest.mark.parametrize("page", ["pages/home.py", "pages/models.py", "pages/attack_lab.py"])
def test_the_app_keeps_working_next_to_hostile_files(hostile_dir, tiny_zoo, monkeypatch, page):
    root, marker, good = hostile_dir
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(root))
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.chdir(ROOT)
    threads = torch.get_num_threads()
    try:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        app.run()
        app.switch_page(page).run()
    finally:
        torch.set_num_threads(threads)
    assert not app.exception, [e.value for e in app.exception]
    if page == "pages/models.py":
        warned = [w.value for w in app.warning if "Unusable file" in w.value]
        assert len(warned) == len(hostile_files(good, marker))
        assert any("never unpickles" in w for w in warned)
    assert not marker.exists()


def test_the_app_keeps_working_when_the_zoo_dir_is_hostile(hostile_dir, monkeypatch):
    root, marker, good = hostile_dir
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(root))
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(root))  # no manifest, only strangers' files
    monkeypatch.chdir(ROOT)
    threads = torch.get_num_threads()
    try:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        app.run()
        app.switch_page("pages/models.py").run()
    finally:
        torch.set_num_threads(threads)
    assert not app.exception, [e.value for e in app.exception]
    assert len([w for w in app.warning if "Unusable file" in w.value]) == len(hostile_files(good, marker))


def test_leftover_temp_files_are_ignored_and_cleaned_by_the_next_save(hostile_dir, tmp_path):
    _, _, good = hostile_dir
    stale = tmp_path / f".{good.id}.dead1234.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert list_checkpoints(tmp_path) == []
    checkpoints.save(good, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{good.id}.safetensors"]


def test_lock_serializes_threads_and_leaves_no_file(tmp_path):
    import threading

    inside, overlaps = [], []

    def worker() -> None:
        with lock(tmp_path, "same-id", poll=0.005):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == [1] * 6 and list(tmp_path.iterdir()) == []


TRAIN_ARGS = ["train", "--dataset", "synthetic", "--epochs", "3", "--n-train", "600", "--batch-size", "32"]


@pytest.mark.skipif(files.fcntl is None, reason="the same-config lock is POSIX only")
def test_two_processes_training_one_config_train_it_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADREG_CHECKPOINT_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "gradreg", *TRAIN_ARGS, "--out", str(tmp_path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trained = [out for out in outputs if "train epoch 1/3" in out]
    assert len(trained) == 1, outputs  # one trained; the other waited for the lock, then loaded its checkpoint
    (path,) = tmp_path.glob("*.safetensors")
    assert all(path.stem in out for out in outputs)
    assert load(path).complete and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_load_or_train_in_two_threads_trains_once(tmp_path):
    import threading

    config = TrainConfig(dataset="synthetic", epochs=1, batch_size=64, n_train=200)
    epochs, results = [], []
    threads = [threading.Thread(target=lambda: results.append(load_or_train(config, root=tmp_path,
                                                                             on_epoch=epochs.append)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(epochs) == 1 and len(results) == 3
    assert all(torch.equal(results[0].state_dict[k], r.state_dict[k]) for r in results for k in r.state_dict)


# Fair use: the caps of gradreg.limits
def test_caps_have_defaults_and_read_their_variables(monkeypatch):
    for cap in limits.CAPS.values():
        monkeypatch.delenv(cap.env, raising=False)
    assert limits.limit("images") == 1000 and limits.limit("attack_steps") == 200
    assert limits.limit("epochs") == 20 and limits.limit("trainings") == 1
    monkeypatch.setenv("GRADREG_MAX_ATTACK_STEPS", "50")
    assert limits.limit("attack_steps") == 50
    with pytest.raises(limits.LimitError, match="GRADREG_MAX_ATTACK_STEPS"):
        limits.check_knob_caps({"steps": 51, "norm": "linf"})
    assert limits.check_knob_caps({"steps": 50}) == {"steps": 50}


@pytest.mark.parametrize("value", ["zero", "0", "-3", "1.5", "nan"])
def test_a_bad_cap_value_falls_back_to_the_default_and_is_reported(monkeypatch, value):
    monkeypatch.setenv("GRADREG_MAX_IMAGES", value)
    assert limits.limit("images") == 1000
    (problem,) = limits.problems()
    assert "GRADREG_MAX_IMAGES" in problem and repr(value) in problem
    with pytest.raises(ValueError, match="valid: images"):
        limits.limit("no_such_cap")


@pytest.fixture
def capped_app(app):
    """conftest's AppTest, with this module's torch thread count restored after each test (the app sets 1)."""
    threads = torch.get_num_threads()
    yield app
    torch.set_num_threads(threads)


def test_the_attack_lab_refuses_requests_over_the_caps_with_a_message(capped_app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_ATTACK_STEPS", "5")
    monkeypatch.setenv("GRADREG_MAX_IMAGES", "32")
    app = capped_app
    app.run()
    app.switch_page("pages/attack_lab.py").run()
    app.selectbox(key="attack.method").set_value("pgd").run()  # its default of 40 steps is over the cap of 5
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert any("GRADREG_MAX_ATTACK_STEPS" in e for e in errors), errors
    assert any("GRADREG_MAX_IMAGES" in e for e in errors), errors  # the curves' default of 64 images


def test_the_train_page_caps_epochs_and_concurrent_runs(capped_app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_EPOCHS", "60")
    monkeypatch.setenv("GRADREG_MAX_TRAININGS", "1")
    app = capped_app
    app.run()
    app.switch_page("pages/train.py").run()
    assert app.number_input(key="train.epochs").max == 60

    def submit(epochs: int, seed: int) -> None:
        app.selectbox(key="train.dataset").set_value("synthetic")
        app.number_input(key="train.epochs").set_value(epochs)
        app.number_input(key="train.n_train").set_value(500)
        app.number_input(key="train.seed").set_value(seed)
        app.button[0].click().run()

    from gradreg.ui import runs

    submit(60, 0)
    try:
        assert any("Started" in i.value for i in app.info), [i.value for i in app.info]
        submit(1, 1)  # a second run while the first one trains: over GRADREG_MAX_TRAININGS
        assert any("allows 1 at a time" in i.value for i in app.info), [i.value for i in app.info]
        assert not app.exception
    finally:
        for job in runs.jobs().values():
            job.stop()
            job.join(60)


def test_ui_computations_refuse_requests_over_the_caps(monkeypatch, tiny_zoo, tmp_path):
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("GRADREG_MAX_IMAGES", "8")
    monkeypatch.setenv("GRADREG_MAX_QUERIES", "50")
    threads = torch.get_num_threads()
    from gradreg import ui

    try:
        cid = ui.usable_models()[0]["id"]
        with pytest.raises(limits.LimitError, match="GRADREG_MAX_IMAGES"):
            ui.robust_point(cid, "synthetic", 9, "fgsm", 0.1, ())
        assert 0 <= ui.robust_point(cid, "synthetic", 8, "fgsm", 0.1, ()) <= 1
        with pytest.raises(limits.LimitError, match="GRADREG_MAX_QUERIES"):
            ui.attack_panel(cid, "synthetic", 0, "square", 0.1, None, (("queries", 51),), "input_gradient")
        with pytest.raises(limits.LimitError, match="images per request"):
            ui.saliency_metrics(cid, "synthetic", 16, "input_gradient")
    finally:
        torch.set_num_threads(threads)


def test_a_misconfigured_cap_is_a_warning_and_its_default_applies(capped_app, monkeypatch):
    monkeypatch.setenv("GRADREG_MAX_EPOCHS", "twenty")
    app = capped_app
    app.run()
    app.switch_page("pages/train.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("GRADREG_MAX_EPOCHS" in w.value for w in app.sidebar.warning), [w.value for w in app.warning]
    assert app.number_input(key="train.epochs").max == limits.CAPS["epochs"].default
