"""Checkpoints: exact round trip, atomic writes, and refusal of pickles, truncations and foreign files."""

from __future__ import annotations

import io
import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from gradreg import TrainConfig
from gradreg.training import checkpoints
from gradreg.training.checkpoints import CheckpointError, inspect, list_checkpoints, load, save
from gradreg.training.reuse import load_or_train


@pytest.fixture
def good_path(tiny_ckpt_dir):
    (info,) = [i for i in list_checkpoints(tiny_ckpt_dir) if i.ok]
    return info.path


def test_round_trip_gives_identical_outputs(good_path, synthetic, tmp_path):
    ckpt = load(good_path)
    again = load(save(ckpt, tmp_path))
    x = synthetic[0][:16]
    assert torch.equal(ckpt.build()(x), again.build()(x))
    assert again.config == ckpt.config and again.history == ckpt.history and again.metrics == ckpt.metrics


def test_loaded_model_is_frozen_and_in_eval_mode(good_path):
    model = load(good_path).build()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_pickle_is_refused_without_being_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "PWNED"), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="pickle"):
        load(path)
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    (tmp_path / "zip.safetensors").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="never unpickles"):
        load(tmp_path / "zip.safetensors")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("keep", [0, 5, 100, -1])
def test_truncated_files_are_refused(good_path, tmp_path, keep):
    data = good_path.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:keep] if keep >= 0 else data[:-10])
    with pytest.raises(CheckpointError, match="truncated|not a safetensors"):
        load(path)


def test_foreign_and_mismatched_files_are_refused(good_path, tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(st_save({"x": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match="without gradreg metadata"):
        load(foreign)
    ckpt = load(good_path)
    wrong = {**ckpt.state_dict, "0.weight": torch.zeros(3, 3)}
    meta = {"format_version": checkpoints.FORMAT_VERSION, "config": ckpt.config.to_dict(),
            "model_kwargs": ckpt.model_kwargs}
    (tmp_path / "shapes.safetensors").write_bytes(st_save(wrong, metadata={"gradreg": json.dumps(meta)}))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load(tmp_path / "shapes.safetensors")
    old = {**meta, "format_version": 0}
    (tmp_path / "old.safetensors").write_bytes(st_save(ckpt.state_dict, metadata={"gradreg": json.dumps(old)}))
    with pytest.raises(CheckpointError, match="format 0"):
        load(tmp_path / "old.safetensors")


def test_huge_header_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    assert "not a safetensors file" in inspect(path).reason


def test_listing_reports_unusable_files_with_reasons(good_path, tmp_path):
    save(load(good_path), tmp_path)
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04junk")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 3)
    infos = {i.path.name: i for i in list_checkpoints(tmp_path)}
    assert infos[good_path.name].ok
    assert not infos["evil.pt"].ok and "not a safetensors" in infos["evil.pt"].reason
    assert not infos["broken.safetensors"].ok and infos["broken.safetensors"].reason


def test_save_leaves_no_temporary_files(good_path, tmp_path):
    save(load(good_path), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [good_path.name]


def test_unknown_id_lists_known_ones(monkeypatch, tiny_ckpt_dir, good_path):
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tiny_ckpt_dir))
    with pytest.raises(CheckpointError, match=good_path.stem):
        load("no-such-model")


def test_load_or_train_trains_once(tmp_path):
    config = TrainConfig(dataset="synthetic", epochs=1, batch_size=64, n_train=200)
    epochs = []
    first = load_or_train(config, root=tmp_path, on_epoch=epochs.append)
    second = load_or_train(config, root=tmp_path, on_epoch=epochs.append)
    assert len(epochs) == 1 and first.id == second.id
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)


def test_delete_removes_one_of_the_users_files(good_path, tmp_path, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(user))
    kept = save(load(good_path), user)
    other = user / "another-model.safetensors"
    other.write_bytes(kept.read_bytes())
    assert inspect(kept).created, "the listing knows when a model was saved"
    assert checkpoints.delete(good_path.stem) == kept  # default root: the user dir
    assert not kept.exists() and other.exists()
    assert [i.path.name for i in list_checkpoints(user)] == [other.name]
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoints.delete(good_path.stem, root=user)  # gone already


def test_delete_never_touches_the_shipped_zoo(tmp_path):
    shipped = sorted(checkpoints.SHIPPED_DIR.glob(f"*{checkpoints.SUFFIX}"))
    assert shipped, "the repository ships a zoo"
    for root in (checkpoints.SHIPPED_DIR, checkpoints.SHIPPED_DIR / "fashion_mnist", checkpoints.SHIPPED_DIR / "."):
        with pytest.raises(CheckpointError, match="never deleted"):
            checkpoints.delete(shipped[0].stem, root=root)
    link = tmp_path / "link"
    link.symlink_to(checkpoints.SHIPPED_DIR)  # a user dir that is the zoo under another name
    with pytest.raises(CheckpointError, match="never deleted"):
        checkpoints.delete(shipped[0].stem, root=link)
    (tmp_path / "alias.safetensors").symlink_to(shipped[0])  # a link to a zoo file in the user dir
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoints.delete("alias", root=tmp_path)
    assert all(p.is_file() for p in shipped)


@pytest.mark.parametrize("bad", ["../x", "a/b", "/etc/passwd", ".hidden", "", "x..y", "..", "a\\b", None, 3])
def test_delete_takes_an_id_not_a_path(tmp_path, bad):
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a checkpoint id"):
        checkpoints.delete(bad, root=tmp_path / "user")
    assert (tmp_path / "x.safetensors").exists()
