"""The zoo: a tiny zoo end to end through the CLI; the manifest matches its files and re-evaluates; its precomputed
lessons are written and read."""

from __future__ import annotations

import json
import os

import pytest

from gradreg.cli.main import main
from gradreg.lessons import precomputed
from gradreg.ui.precompute import pages
from gradreg.paper.zoo import SEEDS_DIR, read_manifest, zoo_configs
from gradreg.paper.zoo_build import build_zoo
from gradreg.training.checkpoints import list_checkpoints, load
from conftest import TINY_ZOO
from test_precomputed import serve


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    code = main(["zoo", "--dataset", "synthetic", "--model", "small_cnn", "--recipe", "torch", "--epochs", "1",
                 "--n-train", "200", "--lams", "1",
                 "--only", "plain", "grad_y_1", "distill", "--n-eval", "32", "--out", str(out)])
    assert code == 0
    return out


def test_manifest_matches_the_files(tiny_zoo):
    manifest = read_manifest(tiny_zoo)
    names = [m["name"] for m in manifest["models"]]
    assert names == ["plain", "grad_y_1", "distill"]  # the transfer source comes first
    files = sorted(info.path.name for info in list_checkpoints(tiny_zoo) if info.ok)
    assert files == sorted(m["file"] for m in manifest["models"])
    for entry in manifest["models"]:
        ckpt = load(tiny_zoo / entry["file"])
        assert ckpt.id == entry["id"] and ckpt.config.to_dict() == entry["config"]
        card = entry["card"]
        assert card["n"] == 32 and 0 <= card["clean"] <= 1 and len(card["curves"]) == 6
        assert (card["curves"][0]["transfer_fgsm"] is None) == (entry["name"] == "plain")


def test_the_zoo_command_precomputes_its_lessons(tiny_zoo, tmp_path):
    """``python -m gradreg zoo`` ends by recording the pages' default views of the zoo it built: the file is
    current, and a fresh process's first visits read it instead of computing."""
    store = precomputed.open_current(tiny_zoo)
    names = {json.loads(key)[0] for key in store.index}
    assert {"saliency_maps", "gallery", "images", "robust_batch", "transfer_cells"} <= names, names
    result = serve({"GRADREG_ZOO_DIR": str(tiny_zoo), "GRADREG_CHECKPOINT_DIR": str(tmp_path)},
                   only=[path for path, _ in pages()])
    assert result["failed"] == [] and result["misses"] == {} and "current" in result["status"]


def test_rebuilding_loads_instead_of_training(tiny_zoo):
    configs = {k: v for k, v in zoo_configs("synthetic", **TINY_ZOO, lams=(1.0,)).items()
               if k == "plain"}
    trained = []
    build_zoo(configs, out=tiny_zoo, n_eval=16, on_epoch=trained.append)
    assert trained == []


def test_broken_manifest_is_a_clear_error(tmp_path):
    assert read_manifest(tmp_path) is None
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"models": "nope"}))
    with pytest.raises(ValueError, match="not a gradreg zoo manifest"):
        read_manifest(tmp_path)


def test_unknown_entry_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "--only", "nonsense", "--dry-run"])
    assert exit_info.value.code == 2 and "grad_y_10" in capsys.readouterr().err


def _shipped(dataset: str):
    """The shipped zoo of ``dataset``: (root, manifest, entries incl. replicas, test x, y); skips without the data
    outside CI (Fashion-MNIST is a Debian package; CI installs it)."""
    from gradreg import load_dataset
    from gradreg.core.data import DatasetUnavailable
    from gradreg.paper.zoo import default_dir

    root = default_dir(dataset)
    manifest = read_manifest(root)
    assert manifest is not None and manifest["dataset"] == dataset
    try:
        x, y = load_dataset(dataset, "test").tensors
    except DatasetUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    return root, manifest, manifest["models"] + manifest.get("replicas", []), x, y


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_shipped_zoo_lists_its_files_and_each_card_is_true(dataset):
    """The manifest lists exactly the shipped files (replicas under seeds/), every checkpoint loads, and each card's
    clean accuracy equals a fresh evaluation on its first n test images (the full test set: the slow test below)."""
    from gradreg import accuracy

    root, manifest, entries, x, y = _shipped(dataset)
    shipped = sorted(p.name for p in root.glob("*.safetensors"))
    assert shipped == sorted(entry["file"] for entry in manifest["models"])
    assert sorted(f"{SEEDS_DIR}/{p.name}" for p in (root / SEEDS_DIR).glob("*.safetensors")) == sorted(
        e["file"] for e in manifest.get("replicas", []))
    for entry in entries:
        n = entry["card"]["n"]
        model = load(root / entry["file"]).build()
        assert accuracy(model, x[:n], y[:n]) == pytest.approx(entry["card"]["clean"], abs=1e-6), entry["name"]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_shipped_zoo_test_accuracies_are_true(dataset):
    """Each recorded test accuracy (models and seed replicas, which the report's mean ± sd uses) equals a fresh
    evaluation on the full test set, on whatever device trained it (fp16 weights, evaluated in fp32: exact)."""
    from gradreg import accuracy

    root, _, entries, x, y = _shipped(dataset)
    for entry in entries:
        model = load(root / entry["file"]).build()
        assert accuracy(model, x, y) == pytest.approx(entry["test_accuracy"], abs=1e-6), entry["name"]


def test_each_dataset_has_its_own_default_zoo_directory():
    from gradreg.paper.zoo import default_dir
    from gradreg.training.checkpoints import SHIPPED_DIR

    assert default_dir("mnist") == SHIPPED_DIR and default_dir("fashion_mnist") == SHIPPED_DIR / "fashion_mnist"
