"""One model's headline numbers agree across pages, and each names its image set (issue 23 item 5): the full-test
accuracy stored with the model on Home and Models & data, the cards' numbers (the zoo's first n_eval test images) in
the λ explorer and the story."""

from __future__ import annotations

import json

from gradreg.ui.widgets import TEST_ACCURACY
from test_teach_pages import _open


def _manifest(tiny_zoo) -> dict:
    return json.loads((tiny_zoo / "manifest.json").read_text())


def test_the_plain_models_numbers_agree_and_name_their_images(app, tiny_zoo):
    manifest = _manifest(tiny_zoo)
    plain = next(e for e in manifest["models"] if e["name"] == "plain")
    n, card = manifest["n_eval"], plain["card"]
    fgsm = next(c["fgsm"] for c in card["curves"] if c["eps"] == 0.1)
    tables = {}
    for page in ("pages/home.py", "pages/models.py"):
        _open(app, page)
        table = app.dataframe[0].value
        row = table[table["id"] == plain["id"]].iloc[0]
        tables[page] = (row[TEST_ACCURACY], row[f"FGSM ε=0.1 (first {n} test images)"])
    assert tables["pages/home.py"] == tables["pages/models.py"] == (plain["test_accuracy"], fgsm)

    _open(app, "pages/story.py")
    text = " ".join(m.value for m in app.markdown)
    assert f"classifies {card['clean']:.1%} of the zoo's first {n} test" in text

    _open(app, "pages/lambda_explorer.py")
    app.select_slider(key="lambda.lam.grad_y").set_value(10.0).run()
    entry = next(e for e in manifest["models"] if e["name"] == "grad_y_10")
    metric = next(m for m in app.metric if m.label == "Clean accuracy")
    assert metric.value == f"{entry['card']['clean']:.1%}"
    assert f"first {n} test images" in metric.proto.help


def test_the_datasets_list_shows_every_reason_whole(app, monkeypatch):
    monkeypatch.delenv("GRADREG_IDX_DIR", raising=False)
    _open(app, "pages/models.py")
    text = " ".join(m.value for m in app.markdown)
    assert "**mnist**: available." in text and "**idx**: not available." in text
    assert "reads MNIST-format IDX files from the directory in GRADREG_IDX_DIR" in text
