"""Models & data: the zoo first, the user's models told apart by their labels, and deleting one's own model (after a
confirmation, never a zoo model, hidden in teacher mode)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gradreg.lessons import zoo_views
from gradreg.training.checkpoints import CheckpointError, list_checkpoints, load, save
from gradreg.ui.catalogue import describe, model_labels


def _user_models(tiny_ckpt_dir, user, variants):
    """Copies of the tiny checkpoint in ``user`` under other settings (same weights), saved at given times."""
    (info,) = list_checkpoints(tiny_ckpt_dir)
    ckpt = load(info.path)
    user.mkdir(exist_ok=True)
    for changes, created in variants:
        config = replace(ckpt.config, **changes)
        save(replace(ckpt, config=config, created=created), user)


def test_user_models_come_after_the_zoo_newest_first_with_telling_labels(tiny_zoo, tiny_ckpt_dir, tmp_path):
    user = tmp_path / "user"
    _user_models(tiny_ckpt_dir, user, [
        ({"regularizer": "grad_y", "lam": 10.0, "epochs": 2, "n_train": 1000}, "2026-12-04T09:00:00+00:00"),
        ({"regularizer": "grad_y", "lam": 10.0, "epochs": 5, "n_train": 1000}, "2026-12-04T10:30:00+00:00"),
        ({"regularizer": "grad_y", "lam": 10.0, "epochs": 2, "n_train": 200}, "2026-12-04T08:15:00+00:00"),
        ({"regularizer": "grad_y", "lam": 30.0, "epochs": 2, "n_train": 1000}, "2026-12-04T11:45:00+00:00"),
    ])
    rows = zoo_views.catalogue(zoo_views.json.loads((tiny_zoo / "manifest.json").read_text()), tiny_zoo, user)
    sources = [r["source"] for r in rows]
    assert sources == ["zoo"] * 6 + ["user"] * 4, "the zoo first"
    mine = rows[6:]
    assert [r["created"][11:16] for r in mine] == ["11:45", "10:30", "09:00", "08:15"], "newest first"
    labels = [describe(r) for r in mine]
    assert len(set(labels)) == 4, labels
    assert labels[0] == "small_cnn · Grad Reg (y) λ=30 · 2 epochs × 1,000 images · 04 Dec 11:45 UTC (yours)"
    assert "5 epochs × 1,000 images" in labels[1] and "2 epochs × 200 images" in labels[3]
    assert all(not describe(r).endswith("(yours)") for r in rows[:6])


def test_labels_that_still_coincide_get_the_id_hash():
    row = {"ok": True, "source": "user", "name": "", "model": "small_cnn", "regularizer": "none", "lam": 0.0,
           "defence": "none", "epochs": 1, "n_train": None, "created": "2026-12-04T09:00:00+00:00"}
    labels = model_labels([{**row, "id": "synthetic-small_cnn-none-none-e1-aaaa1111"},
                           {**row, "id": "synthetic-small_cnn-none-none-e1-bbbb2222", "lr": 0.01}])
    assert labels == {"synthetic-small_cnn-none-none-e1-aaaa1111":
                      "small_cnn · 1 epoch × all images · 04 Dec 09:00 UTC (yours) [aaaa1111]",
                      "synthetic-small_cnn-none-none-e1-bbbb2222":
                      "small_cnn · 1 epoch × all images · 04 Dec 09:00 UTC (yours) [bbbb2222]"}


def _models_page(app, tiny_ckpt_dir, tmp_path, monkeypatch, *, query=None):
    user = tmp_path / "mine"
    _user_models(tiny_ckpt_dir, user, [({"epochs": 1}, "2026-12-04T09:00:00+00:00"),
                                       ({"epochs": 2}, "2026-12-04T10:00:00+00:00")])
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(user))
    if query:
        app.query_params.update(query)
    app.run()
    app.switch_page("pages/models.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return user


def test_deleting_ones_own_model_asks_first(app, tiny_ckpt_dir, tiny_zoo, tmp_path, monkeypatch):
    user = _models_page(app, tiny_ckpt_dir, tmp_path, monkeypatch)
    table = app.dataframe[0].value
    assert list(table["source"]) == ["zoo"] * 6 + ["user"] * 2
    picker = app.selectbox(key="models.delete.id")
    assert picker.options == [t for t in table["model"] if t.endswith("(yours)")], "only the user's models"
    assert "-e2-" in picker.value, "the newest first"
    newest = picker.options[picker.index]
    assert "2 epochs" in newest
    app.button(key="models.delete.ask").click().run()
    assert any("cannot be restored" in w.value for w in app.warning), "a confirmation first"
    assert len(list(user.glob("*.safetensors"))) == 2, "nothing deleted yet"
    app.button(key="models.delete.no").click().run()
    assert not any("cannot be restored" in w.value for w in app.warning)
    assert len(list(user.glob("*.safetensors"))) == 2, "cancel deletes nothing"
    app.button(key="models.delete.ask").click().run()
    app.button(key="models.delete.yes").click().run()
    assert not app.exception
    assert any(s.value == f"Deleted {newest}." for s in app.success)
    (left,) = user.glob("*.safetensors")
    assert "-e1-" in left.name, "the chosen model went, the other stayed"
    assert len(list(tiny_zoo.glob("*.safetensors"))) == 6, "the zoo is untouched"
    assert len(app.dataframe[0].value) == 7 and app.selectbox(key="models.delete.id").options == [
        t for t in app.dataframe[0].value["model"] if t.endswith("(yours)")], "the listing forgot it"


def test_teacher_mode_hides_deleting(app, tiny_ckpt_dir, tmp_path, monkeypatch):
    _models_page(app, tiny_ckpt_dir, tmp_path, monkeypatch, query={"teacher": "1"})
    assert len(app.dataframe[0].value) == 8, "the models are listed"
    assert not [s for s in app.selectbox if s.key == "models.delete.id"]
    assert not [b for b in app.button if (b.key or "").startswith("models.delete")]


def test_the_ui_refuses_to_delete_a_zoo_model(tiny_zoo, monkeypatch, tmp_path):
    """The library refuses the shipped zoo; the app also refuses whatever zoo it serves (``$GRADREG_ZOO_DIR``)."""
    from gradreg.ui import catalogue

    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path / "user"))
    zoo_id = next(tiny_zoo.glob("*.safetensors")).stem
    with pytest.raises(CheckpointError, match="not one of your trained models"):
        catalogue.delete_user_model(zoo_id)
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tiny_zoo))  # a server whose user dir is the zoo's
    with pytest.raises(CheckpointError, match="not one of your trained models"):
        catalogue.delete_user_model(zoo_id)
    assert len(list(tiny_zoo.glob("*.safetensors"))) == 6
