"""Figures: each function returns a go.Figure with the expected traces; viz never imports streamlit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from captum.attr._utils.visualization import _cumulative_sum_threshold

from gradreg.viz import figures


@pytest.fixture
def maps():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 28, 28, generator=generator)
    a = torch.randn(3, 1, 28, 28, generator=generator)
    return images, {"plain": a, "grad_y": 10 * a.roll(1, dims=-1)}


def test_clip_level_follows_captums_cumulative_mass_rule():
    values = np.random.default_rng(0).standard_normal((28, 28))
    assert figures.clip_level(values) == pytest.approx(_cumulative_sum_threshold(np.abs(values), 98.0))
    assert figures.clip_level(np.array([[1.0, 2.0], [3.0, 4.0]]), outlier_perc=50) == 3.0  # cumsum 1, 3, 6, 10 ≥ 5
    assert figures.clip_level(np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError):
        figures.clip_level(values, outlier_perc=100)


@pytest.mark.parametrize("overlay", [False, True])
def test_saliency_grid_traces(maps, overlay):
    images, named = maps
    fig = figures.saliency_grid(named, images, overlay=overlay, column_titles=["a", "b", "c"])
    per_map = 2 if overlay else 1
    assert len(fig.data) == 3 + 3 * 2 * per_map  # input row + models × images
    assert sum(bool(t.showscale) for t in fig.data) == 1  # one colour bar for the grid
    assert all(t.zsmooth is False for t in fig.data)
    assert fig.layout.yaxis9.scaleanchor == "x9"
    assert {"input", "plain", "grad_y", "a", "c"} <= {a.text for a in fig.layout.annotations}  # row and column titles


def _peak(fig, name):
    return max(np.abs(np.asarray(t.z)).max() for t in fig.data if t.name == name)


def test_shared_scale_toggle(maps):
    images, named = maps
    shared = figures.saliency_grid(named, images, shared_scale=True)
    separate = figures.saliency_grid(named, images, shared_scale=False)
    assert _peak(shared, "plain") < 0.5 and _peak(shared, "grad_y") == 1.0  # 10× smaller map looks fainter
    assert _peak(separate, "plain") == _peak(separate, "grad_y") == 1.0


def test_probability_bars():
    fig = figures.probability_bars({"plain": torch.softmax(torch.randn(10), 0), "grad_y": [0.1] * 10})
    assert [type(t) for t in fig.data] == [go.Bar, go.Bar] and len(fig.data[0].x) == 10
    assert fig.layout.barmode == "group"


def test_accuracy_curve():
    records = [{"model": m, "eps": e, "accuracy": 1 - e * k} for m, k in (("plain", 3), ("grad_y", 1))
               for e in (0.3, 0.0, 0.1)]
    fig = figures.accuracy_curve(records)
    assert [t.name for t in fig.data] == ["plain", "grad_y"]
    assert list(fig.data[0].x) == [0.0, 0.1, 0.3] and list(fig.data[0].y) == pytest.approx([1.0, 0.7, 0.1])


def test_transfer_heatmap():
    names = ["plain", "grad_y"]
    records = [{"source": s, "target": t, "eps": eps, "accuracy": 0.1 * i + 0.01 * j + eps}
               for eps in (0.1, 0.2) for i, s in enumerate(names) for j, t in enumerate(names)]
    fig = figures.transfer_heatmap(records, eps=0.2)
    (trace,) = fig.data
    assert list(trace.y) == names and list(trace.x) == names
    np.testing.assert_allclose(np.asarray(trace.z), [[0.2, 0.21], [0.3, 0.31]])
    with pytest.raises(ValueError, match="eps"):
        figures.transfer_heatmap(records, eps=0.5)


def test_metric_vs_lambda():
    records = [{"regularizer": r, "lam": lam, "total_variation": 2 - lam / 100}
               for r in ("grad_y", "grad_uniform") for lam in (0, 100, 1, 10)]
    fig = figures.metric_vs_lambda(records, metric="total_variation")
    assert [t.name for t in fig.data] == ["grad_y", "grad_uniform"]
    assert list(fig.data[0].x) == [1, 10, 100] and fig.layout.xaxis.type == "log"
    assert len(fig.layout.shapes) == 2  # λ = 0 baselines


def test_import_viz_does_not_import_streamlit():
    code = "import sys, gradreg.viz; assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
