"""The zoo's precomputed lessons (``gradreg.lessons.precomputed``, ``gradreg.ui.stored``, ``gradreg.ui.precompute``):
the file format and its refusals, staleness, the shipped file being current and serving every page's default view
without computing, its values equal to a live computation, and a broken or stale file falling back to live pages."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gradreg.lessons import precomputed
from gradreg.lessons.precomputed import MISSING, StoreError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"
REBUILD = "the shipped precomputed lessons are stale: run `python -m gradreg lessons` (and for Fashion-MNIST add " \
          "`--zoo checkpoints/fashion_mnist`), then commit checkpoints/**/lessons/views.safetensors"


def _value():
    return {"maps": np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2), 3: (None, True, [1.5, "x", float("nan")]),
            (1, 2): np.float32(2.5), "ints": np.array([1, 2], dtype=np.int64), "nested": [{"a": (1, 2)}]}


def test_values_round_trip_through_the_file(tmp_path):
    key = precomputed.call_key("saliency_maps", ("id", "mnist", (1, 2), "input_gradient"))
    path = precomputed.write(tmp_path / "lessons" / "views.safetensors", {key: _value()}, {"format": 1}, built="now")
    assert [p.name for p in path.parent.iterdir()] == ["views.safetensors"], "no temp file left behind"
    store = precomputed.read(path)
    got = store.get("saliency_maps", ("id", "mnist", (1, 2), "input_gradient"))
    want = _value()
    assert got["maps"].dtype == np.float32 and np.array_equal(got["maps"], want["maps"])
    assert got[3][:2] == (None, True) and got[3][2][:2] == [1.5, "x"] and np.isnan(got[3][2][2])
    assert got[(1, 2)] == 2.5 and got["ints"].dtype == np.int64 and got["nested"] == [{"a": (1, 2)}]
    got["maps"][...] = 0  # a caller may write to what it got: the next reader still sees the stored values
    assert store.get("saliency_maps", ("id", "mnist", (1, 2), "input_gradient"))["maps"].max() == 11
    assert store.get("saliency_maps", ("id", "mnist", (1, 3), "input_gradient")) is MISSING
    assert store.built == "now" and len(store) == 1


def test_unstorable_values_are_refused_by_type():
    for value in (torch.zeros(2), object(), {1, 2}, np.array(["a"])):
        with pytest.raises(TypeError):
            precomputed.encode(value, {})


def _safetensors(metadata: dict | None, arrays: dict | None = None) -> bytes:
    from safetensors.numpy import save

    return save(arrays or {"a0": np.zeros(2, np.float32)}, metadata=metadata)


@pytest.mark.parametrize("data, reason", [
    (b"", "not a safetensors file"),
    (b"\xff" * 8 + b"{}", "not a safetensors file"),
    (pickle.dumps({"index": {}}), "not a safetensors file"),
    (_safetensors(None), "malformed"),
    (_safetensors({"gradreg.lessons": "{not json"}), "malformed"),
    (_safetensors({"gradreg.lessons": json.dumps({"fingerprint": {}, "index": {"k": {"$a": "a9"}}})}), "a9"),
    (_safetensors({"gradreg.lessons": json.dumps({"fingerprint": {}, "index": {"k": {"x": 1}}})}), "untagged"),
    (_safetensors({"gradreg.lessons": json.dumps({"fingerprint": {}, "index": {"k": {"$d": [[1]]}}})}), "pair"),
    (_safetensors({"gradreg.lessons": json.dumps({"fingerprint": [], "index": {}})}), "malformed"),
])
def test_broken_or_hostile_files_are_refused_with_a_reason(tmp_path, monkeypatch, data, reason):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    path = tmp_path / "views.safetensors"
    path.write_bytes(data)
    with pytest.raises(StoreError, match=reason):
        precomputed.read(path)


def test_a_missing_or_huge_file_is_refused(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="cannot be read"):
        precomputed.read(tmp_path / "nothing.safetensors")
    path = tmp_path / "views.safetensors"
    path.write_bytes(_safetensors({"gradreg.lessons": json.dumps({"fingerprint": {}, "index": {}})}))
    monkeypatch.setattr(precomputed, "MAX_FILE_BYTES", 10)
    with pytest.raises(StoreError, match="over 10"):
        precomputed.read(path)


def test_a_store_goes_stale_when_the_zoo_or_the_code_changes(tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "manifest.json").write_text('{"models": []}')
    (zoo / "m.safetensors").write_bytes(b"weights")
    precomputed.write(zoo / precomputed.FILE, {}, precomputed.fingerprint(zoo))
    assert len(precomputed.open_current(zoo)) == 0
    os.utime(zoo / "m.safetensors", (0, 0))  # a clone's new dates: still current
    precomputed.open_current(zoo)
    (zoo / "m.safetensors").write_bytes(b"retrained")
    with pytest.raises(StoreError, match="stale: the zoo's models changed"):
        precomputed.open_current(zoo)
    precomputed.write(zoo / precomputed.FILE, {}, precomputed.fingerprint(zoo))
    monkeypatch.setattr(precomputed, "code_hash", lambda root=None: "edited")
    with pytest.raises(StoreError, match="the code that computes the lessons changed"):
        precomputed.open_current(zoo)


def test_the_code_hash_ignores_docstrings_but_not_code(tmp_path, monkeypatch):
    (tmp_path / "lessons").mkdir()
    module = tmp_path / "lessons" / "m.py"
    monkeypatch.setattr(precomputed, "CODE", ("lessons",))
    module.write_text('"""Doc."""\n\ndef f():\n    """Say."""\n    return 1  # one\n')
    before = precomputed.code_hash(tmp_path)
    module.write_text('"""Other doc."""\n\ndef f():\n    """Say more."""\n    return 1  # uno\n')
    assert precomputed.code_hash(tmp_path) == before
    module.write_text('"""Doc."""\n\ndef f():\n    return 2\n')
    assert precomputed.code_hash(tmp_path) != before


@pytest.mark.parametrize("zoo", ["checkpoints", "checkpoints/fashion_mnist"])
def test_the_shipped_lessons_are_current(zoo):
    try:
        store = precomputed.open_current(ROOT / zoo)
    except StoreError as err:
        pytest.fail(f"{err}: {REBUILD}")
    assert len(store) > 50


SERVE = """
import json, os, sys
os.chdir({root!r})
from streamlit.testing.v1 import AppTest
from gradreg.ui import bounded, precompute, stored
failed = []
views = precompute.views() if {only!r} is None else [(p, {{}}) for p, _ in precompute.pages() if p in {only!r}]
for path, params in views:
    app = AppTest.from_file("app.py", default_timeout=300)
    app.run()
    app.switch_page(path)
    app.query_params.update(params)
    app.run()
    failed += [f"{{path}}: {{e.value}}" for e in app.exception]
print(json.dumps({{"misses": stored.misses(), "timed": sorted(bounded._ledger()["timed"]), "failed": failed,
                  "status": stored.lessons_status()}}))
"""


def serve(env: dict, *, only: list[str] | None = None) -> dict:
    """Open every view of ``precompute.views`` (or only the pages ``only``, as they open) in a fresh process, as
    first visitors do; returns what was computed live (``misses``), the bounded runs' timed kinds, failures and the
    lessons' status line."""
    out = subprocess.run([sys.executable, "-c", SERVE.format(root=str(ROOT), only=only)], capture_output=True,
                         text=True,
                         timeout=600, env=os.environ | {"PYTHONWARNINGS": "ignore", "GRADREG_WARM_START": "0"} | env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0 and lines, out.stderr[-2000:]
    return json.loads(lines[-1])


def test_every_default_view_of_the_shipped_zoo_is_read_not_computed(tmp_path):
    """A fresh process opens every page and lesson preset as a first visitor does: nothing is computed live, and no
    bounded run times a stored chunk (which would teach its estimates a false cost)."""
    result = serve({"GRADREG_ZOO_DIR": str(SHIPPED), "GRADREG_CHECKPOINT_DIR": str(tmp_path)})
    assert result["failed"] == []
    assert "current" in result["status"], f"{result['status']}: {REBUILD}"
    assert result["misses"] == {}, f"computed live although stored: {result['misses']}"
    assert result["timed"] == []


def test_stored_values_equal_a_live_computation():
    from gradreg.core.data import load_dataset
    from gradreg.lessons import panels
    from gradreg.training.checkpoints import load

    store = precomputed.open_current(SHIPPED)
    x, y = load_dataset("mnist", "test").tensors
    checked = set()
    for key, tree in store.index.items():
        name, args = json.loads(key)
        if name in checked or name not in ("saliency_maps", "images", "robust_batch"):
            continue
        value = precomputed.decode(tree, store.arrays)
        if name == "images":
            rows = list(args[1])
            assert np.array_equal(value[0], x[rows].numpy()) and value[1] == y[rows].tolist()
        elif name == "saliency_maps":
            model = load(args[0]).build(frozen=True)
            live = panels.saliency_maps(model, x[list(args[2])], method=args[3])
            assert np.allclose(value, live, atol=1e-6)
        elif args[4] == "fgsm":  # robust_batch: correct answers of a batch under FGSM
            from gradreg.evaluation.accuracy import robust_accuracy

            model = load(args[0]).build(frozen=True)
            a, b, eps = args[2], args[3], args[5]
            live = robust_accuracy(model, x[a:b], y[a:b], method="fgsm", epsilons=[eps], seed=a)[0]["accuracy"]
            assert value == round(live * (b - a))
        else:
            continue
        checked.add(name)
    assert checked == {"saliency_maps", "images", "robust_batch"}


@pytest.mark.parametrize("damage", ["broken", "stale"])
def test_a_broken_or_stale_store_falls_back_to_live_pages(tmp_path, tiny_zoo, damage):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    (zoo / "lessons").mkdir(exist_ok=True)
    if damage == "broken":
        (zoo / precomputed.FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    else:
        precomputed.write(zoo / precomputed.FILE, {}, {**precomputed.fingerprint(zoo), "code": "old"})
    result = serve({"GRADREG_ZOO_DIR": str(zoo), "GRADREG_CHECKPOINT_DIR": str(tmp_path / "user")},
                   only=["pages/home.py", "pages/attack_lab.py", "pages/masking.py", "pages/models.py"])
    assert result["failed"] == []
    reason = "stale" if damage == "stale" else "malformed"
    assert result["status"].startswith("No precomputed lessons in use") and reason in result["status"]
    assert result["misses"] == {}, "nothing is looked up in an unusable store"


def test_a_server_reads_lessons_written_while_it_runs(tmp_path, monkeypatch):
    """The serving side opens the file once per state of the zoo's files: written (or rebuilt) while the server
    runs, it is read at the next look-up, and a missing one is named."""
    from gradreg.ui import stored

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "manifest.json").write_text('{"models": []}')
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(zoo))
    assert stored.store() is None and "cannot be read" in stored.lessons_status()
    key = precomputed.call_key("f", (1,))
    precomputed.write(zoo / precomputed.FILE, {key: 2}, precomputed.fingerprint(zoo))
    assert stored.store().get("f", (1,)) == 2 and "1 precomputed views" in stored.lessons_status()
    precomputed.write(zoo / precomputed.FILE, {key: 3}, precomputed.fingerprint(zoo))
    os.utime(zoo / precomputed.FILE, ns=(1, 10**18))  # a new stamp even on a coarse clock
    assert stored.store().get("f", (1,)) == 3
