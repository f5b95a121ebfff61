"""The pages' data (gradreg.lessons.zoo_views, gradreg.lessons.panels), background training (gradreg.training.jobs)
and the pages' figures (gradreg.viz.page_figures), without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradreg import TrainConfig
from gradreg.attacks import ATTACKS
from gradreg.explain.saliency import saliency
from gradreg.lessons import panels, zoo_views
from gradreg.training import jobs
from gradreg.viz import page_figures


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """As in the app (gradreg.ui): two threads on a busy 2-core machine made JSMA here 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _card(clean: float, fgsm: float, pgd: float, transfer: float | None, grad_norm: float) -> dict:
    curves = [{"eps": eps, "fgsm": fgsm * (1 - eps), "pgd": pgd * (1 - eps), "transfer_fgsm":
               None if transfer is None else transfer * (1 - eps)} for eps in (0.1, 0.2, 0.3)]
    return {"n": 32, "clean": clean, "grad_norm": grad_norm, "max_prob": 0.9, "other_log_prob": -12.0,
            "curves": curves}


def _entry(name: str, regularizer: str = "none", lam: float = 0.0, defence: str = "none", **card) -> dict:
    config = {"dataset": "synthetic", "regularizer": regularizer, "lam": lam, "defence": defence}
    return {"name": name, "id": f"id-{name}", "config": config, "card": _card(**card)}


@pytest.fixture
def manifest() -> dict:
    return {"dataset": "synthetic", "n_eval": 32, "models": [
        _entry("plain", clean=0.99, fgsm=0.3, pgd=0.1, transfer=None, grad_norm=5.0),
        _entry("grad_y_10", "grad_y", 10.0, clean=0.97, fgsm=0.8, pgd=0.3, transfer=0.9, grad_norm=0.5),
        _entry("grad_y_0.1", "grad_y", 0.1, clean=0.99, fgsm=0.4, pgd=0.1, transfer=0.5, grad_norm=3.0),
        _entry("grad_y_1", "grad_y", 1.0, clean=0.985, fgsm=0.6, pgd=0.2, transfer=0.7, grad_norm=1.0),
        _entry("grad_uniform", "grad_uniform", 1.0, clean=0.98, fgsm=0.5, pgd=0.2, transfer=0.6, grad_norm=1.5),
        _entry("both", "grad_y", 10.0, "fgsm_at", clean=0.97, fgsm=0.95, pgd=0.3, transfer=0.9, grad_norm=0.4),
        _entry("fgsm_at", defence="fgsm_at", clean=0.98, fgsm=0.97, pgd=0.2, transfer=0.9, grad_norm=2.0),
    ]}


def test_card_values_take_the_nearest_eps(manifest):
    values = zoo_views.card_values(manifest["models"][1]["card"], 0.19)
    assert values["eps"] == 0.2
    assert values["fgsm"] == pytest.approx(0.8 * 0.8)
    assert values["clean"] == 0.97 and values["grad_norm"] == 0.5
    assert zoo_views.card_epsilons(manifest) == [0.1, 0.2, 0.3]


def test_lambda_grid_and_sweep_exclude_defended_models(manifest):
    assert zoo_views.lambda_grid(manifest) == {"grad_uniform": [1.0], "grad_y": [0.1, 1.0, 10.0]}
    sweep = zoo_views.lambda_rows(manifest, "grad_y", 0.1)
    assert [r["lam"] for r in sweep] == [0.1, 1.0, 10.0]
    assert [r["name"] for r in sweep] == ["grad_y_0.1", "grad_y_1", "grad_y_10"]
    assert set(zoo_views.CARD_KEYS) <= set(sweep[0])
    assert zoo_views.reference_entry(manifest)["name"] == "plain"


def test_showcase_prefers_robustness_within_the_accuracy_tolerance(manifest):
    plain, best = zoo_views.showcase(manifest)
    assert plain["name"] == "plain"
    assert best["name"] == "grad_y_10"  # 0.97 is within 0.02 of 0.99 and has the best FGSM accuracy
    assert zoo_views.showcase(manifest, tolerance=0.01)[1]["name"] == "grad_y_1"
    assert zoo_views.showcase({"models": manifest["models"][:1]}) is None


def test_lineup_contrasts_plain_regularized_and_defended(manifest):
    assert zoo_views.lineup(manifest) == ["id-plain", "id-grad_y_10", "id-fgsm_at", "id-both"]
    assert zoo_views.lineup(manifest, count=2) == ["id-plain", "id-grad_y_10"]


def test_catalogue_lists_user_and_zoo_files_with_cards(tiny_ckpt_dir, tmp_path):
    user, zoo = tmp_path / "user", tmp_path / "zoo"
    user.mkdir()
    zoo.mkdir()
    (checkpoint,) = list(tiny_ckpt_dir.iterdir())
    (zoo / checkpoint.name).write_bytes(checkpoint.read_bytes())
    (user / "broken.safetensors").write_bytes(b"\x00" * 4)
    manifest = {"models": [{"name": "plain", "id": checkpoint.stem, "card": {"clean": 0.5}}]}
    rows = zoo_views.catalogue(manifest, zoo, user)
    assert [r["source"] for r in rows] == ["zoo", "user"], "the zoo first"
    good, broken = rows
    assert not broken["ok"] and broken["reason"]
    assert good["ok"] and good["name"] == "plain" and good["card"] == {"clean": 0.5}
    assert good["dataset"] == "synthetic" and good["id"] == checkpoint.stem
    assert zoo_views.same_dataset([good, good]) == "synthetic"
    assert zoo_views.same_dataset([good, {**good, "dataset": "mnist"}]) is None
    assert len(zoo_views.catalogue(None, zoo, zoo)) == 1, "a directory given twice is listed once"


def test_gallery_and_thumbnails(synthetic):
    x, y = synthetic
    classes = panels.gallery(y, per_class=3)
    assert sorted(classes) == list(range(10))
    assert all(len(v) == 3 and all(int(y[i]) == k for i in v) for k, v in classes.items())
    strip = panels.thumbnail_strip(x[:4].numpy(), scale=2, gap=1)
    assert strip.dtype == np.uint8 and strip.shape == (56, 4 * 29 * 2)


def test_saliency_maps_are_the_library_maps_as_numpy(tiny_model, synthetic):
    x, _ = synthetic
    maps = panels.saliency_maps(tiny_model, x[:3])
    assert maps.shape == (3, 1, 28, 28) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, saliency(tiny_model, x[:3], "pred", "input_gradient").numpy(), rtol=1e-6)


def test_attack_panel_fgsm(tiny_model, synthetic):
    x, y = synthetic
    panel = panels.attack_panel(tiny_model, x[:1], y[:1], method="fgsm", size=0.1)
    assert panel["linf"] == pytest.approx(0.1, abs=1e-6)
    assert panel["image"].shape == panel["adversarial"].shape == panel["saliency_adv"].shape == (1, 28, 28)
    np.testing.assert_allclose(panel["adversarial"] - panel["image"], panel["perturbation"], atol=1e-6)
    assert panel["probs_clean"].sum() == pytest.approx(1, abs=1e-5)
    assert panel["pred_clean"] == int(panel["probs_clean"].argmax()) and panel["target"] == -1
    assert panel["label"] == int(y[0])
    still = panels.attack_panel(tiny_model, x[:1], y[:1], method="fgsm", size=0.0)
    assert still["linf"] == 0 and still["l0"] == 0 and still["pred_adv"] == still["pred_clean"]
    assert all(p.grad is None for p in tiny_model.parameters()) and not tiny_model.training


@pytest.mark.parametrize("method", sorted(name for name, spec in ATTACKS.items() if spec.targeted))
def test_attack_panel_names_the_target(tiny_model, synthetic, method):
    x, y = synthetic
    panel = panels.attack_panel(tiny_model, x[:1], y[:1], method=method, size=0.1, target=4)
    assert panel["target"] == 4
    default = panels.attack_panel(tiny_model, x[:1], y[:1], method=method, size=0.1)
    assert default["target"] == (int(y[0]) + 1) % 10, "the paper's (y + 1) mod K"


def test_size_range_and_summary():
    assert panels.size_range("pgd", "l2")[1] > panels.size_range("pgd")[1]
    assert panels.size_range("iterated_tgsm")[0].startswith("step size")
    panel = {"label": 3, "pred_clean": 3, "pred_adv": 5, "target": 5, "probs_clean": np.array([0.1, 0.9]),
             "probs_adv": np.array([0.2, 0.8]), "linf": 0.1, "l2": 1.0, "l0": 12}
    assert "reached the target" in panels.attack_summary("m", panel)
    assert "still correct" in panels.attack_summary("m", panel | {"pred_adv": 3, "target": -1})


def test_metrics_and_randomization(tiny_model, synthetic):
    x, y = synthetic
    row = panels.metrics_row(tiny_model, x[:4], y[:4], method="input_gradient")
    assert {"total_variation", "stroke_mass", "deletion_auc", "randomization_similarity"} <= set(row)
    records = panels.randomization_records(tiny_model, x[:4], y[:4], method="input_gradient")
    assert records[0]["similarity"] == 1.0 and len(records) > 2


def test_training_job_completes_and_saves(tmp_path):
    config = TrainConfig(dataset="synthetic", epochs=1, n_train=64, batch_size=32)
    job = jobs.TrainingJob(config, root=tmp_path).start()
    job.join(timeout=120)
    snapshot = job.snapshot()
    assert snapshot["state"] == "done", snapshot["error"]
    assert snapshot["result"]["id"] == job.id and 0 <= snapshot["result"]["test_accuracy"] <= 1
    assert len(snapshot["epochs"]) == 1 and jobs.progress(snapshot) == 1.0
    assert (tmp_path / f"{job.id}.safetensors").is_file()


def test_training_job_stops_without_saving(tmp_path):
    job = jobs.TrainingJob(TrainConfig(dataset="synthetic", epochs=50, batch_size=16), root=tmp_path)
    job.stop()
    job.start().join(timeout=120)
    snapshot = job.snapshot()
    assert snapshot["state"] == "stopped" and snapshot["batch"] == 1
    assert 0 < jobs.progress(snapshot) < 0.01
    assert not list(tmp_path.iterdir())


def test_training_job_reports_failures(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jobs, "load_or_train", broken)
    job = jobs.TrainingJob(TrainConfig(dataset="synthetic", epochs=1), root=tmp_path).start()
    job.join(timeout=30)
    assert job.snapshot()["state"] == "failed" and "disk full" in job.snapshot()["error"]


def test_image_grid_lays_out_square_crisp_panels():
    z = np.random.default_rng(0).normal(size=(28, 28))
    cells = [[{"z": np.abs(z) / 4, "kind": "gray"}, None], [{"z": z, "kind": "signed", "level": 2.0}] * 2]
    figure = page_figures.image_grid(cells, row_titles=["a", "b"], column_titles=["x", "y"], cell_px=100)
    assert len(figure.data) == 3
    signed = figure.data[1]
    assert signed.zmin == -2.0 and signed.zmax == 2.0 and signed.zsmooth is False
    assert figure.layout.yaxis4.scaleanchor == "x4" and figure.layout.yaxis4.autorange == "reversed"
    assert figure.layout.height == 28 + 8 + 200
    assert [a.text for a in figure.layout.annotations] == ["x", "y", "a", "b"]


def test_map_and_method_grids_share_a_scale_per_column_or_row():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(2, 1, 28, 28))
    maps = {"plain": rng.normal(size=(2, 1, 28, 28)), "gr": 10 * rng.normal(size=(2, 1, 28, 28))}
    shared = page_figures.map_grid(images, maps)
    assert len(shared.data) == 2 * 3
    assert shared.data[2].zmax == shared.data[4].zmax, "one clip level per digit column"
    alone = page_figures.map_grid(images, maps, shared_scale=False)
    assert alone.data[2].zmax != alone.data[4].zmax
    grid = page_figures.method_grid(images[0], {"IG": {"a": maps["plain"][0], "b": maps["gr"][0]},
                                               "SG": {"a": maps["plain"][1], "b": maps["gr"][1]}})
    assert len(grid.data) == 1 + 4 and grid.data[1].zmax == grid.data[2].zmax


def test_attack_row_probability_pair_and_curves():
    rng = np.random.default_rng(2)
    panel = {"image": rng.uniform(size=(1, 28, 28)), "adversarial": rng.uniform(size=(1, 28, 28)),
             "perturbation": rng.normal(size=(1, 28, 28)) * 0.05, "saliency_clean": rng.normal(size=(1, 28, 28)),
             "saliency_adv": rng.normal(size=(1, 28, 28)), "probs_clean": rng.dirichlet(np.ones(10)),
             "probs_adv": rng.dirichlet(np.ones(10)), "label": 3, "linf": 0.05}
    row = page_figures.attack_row(panel)
    assert len(row.data) == 5 and row.data[2].zmax == 0.05
    assert row.layout.annotations[2].text == "δ ×20"
    bars = page_figures.probability_pair(panel)
    assert [t.name for t in bars.data] == ["clean", "adversarial"] and bars.data[0].marker.line.width[3] == 2
    curves = page_figures.training_curves([{"loss": 2.0, "penalty": 0.1, "val_accuracy": 0.5}] * 2)
    assert len(curves.data) == 3 and curves.data[2].yaxis == "y2"
    random = page_figures.randomization_curves({"m": [{"layer": "(trained)", "similarity": 1.0,
                                                      "similarity_std": 0.0}]})
    assert random.data[0].y == (1.0,)


def test_lambda_sweep_marks_the_current_lambda(manifest):
    sweep = zoo_views.lambda_rows(manifest, "grad_y", 0.1)
    reference = zoo_views.card_values(zoo_views.reference_entry(manifest)["card"], 0.1)
    figure = page_figures.lambda_sweep(sweep, lam=1.0, reference=reference)
    markers = [s for s in figure.layout.shapes if s.x0 == 1.0 and s.x1 == 1.0]
    assert len(markers) == len(page_figures.SWEEP_PANELS)
    dotted = [s for s in figure.layout.shapes if s.line.dash == "dot"]
    assert len(dotted) == 5, "plain baselines: clean, FGSM, PGD, gradient norm, confidence (no transfer for plain)"
    assert figure.layout.xaxis.type == "log" and len(figure.data) == 6
    assert list(figure.data[0].y) == [r["clean"] for r in sweep]
