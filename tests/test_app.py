"""AppTest smoke tests: every page runs without an exception and shows its key elements."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(monkeypatch, tiny_ckpt_dir):
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tiny_ckpt_dir))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_home(app):
    app.run()
    assert not app.exception
    assert app.title[0].value.startswith("gradreg")
    assert int(app.metric[0].value) >= 1


def test_models_page_lists_usable_and_unusable(app, tiny_ckpt_dir, tmp_path, monkeypatch):
    for f in tiny_ckpt_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04junk")
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path))
    app.switch_page("pages/models.py").run()
    assert not app.exception
    assert app.title[0].value == "Models & data"
    assert any("evil.pt" in w.value for w in app.warning)
    assert len(app.dataframe) == 2
