"""Plotly line figures for the dashboard's panels: accuracy against ε, the randomization check's similarity
against re-initialized layers, and a training run's curves. Every function returns a ``go.Figure``; nothing imports
streamlit.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from gradreg.viz.figures import COLOURS, accuracy_curve


def accuracy_curves(records: Sequence[Mapping[str, object]], *, height: int = 360) -> go.Figure:
    """``gradreg.viz.accuracy_curve`` (accuracy against ε, one line per model) with compact margins."""
    return accuracy_curve(records).update_layout(height=height, margin={"l": 50, "r": 10, "t": 20, "b": 40})


LAYER_KINDS = {"Conv2d": "conv", "Linear": "dense", "BatchNorm2d": "batch norm", "BatchNorm1d": "batch norm"}


def _layer_label(record: Mapping[str, object]) -> str:
    """``"(trained)"``, or the layer's kind and its name in the model: ``"dense 9"``, ``"conv 0"``."""
    kind = str(record.get("kind") or "")
    return f"{LAYER_KINDS.get(kind, kind.lower())} {record['layer']}".strip() if kind else str(record["layer"])


def randomization_curves(records: Mapping[str, Sequence[Mapping[str, object]]]) -> go.Figure:
    """Similarity of the trained model's maps to those after re-initializing layers top-down (Adebayo et al. 2018),
    one line per model; a map that stays similar does not depend on the learned weights (fails the check)."""
    data = []
    for (name, rows), colour in zip(records.items(), COLOURS * 4):
        data.append({"type": "scatter", "x": [_layer_label(r) for r in rows], "y": [r["similarity"] for r in rows],
                     "mode": "lines+markers", "name": name, "line": {"color": colour},
                     "error_y": {"type": "data", "array": [r["similarity_std"] for r in rows], "visible": True}})
    layout = {"height": 320, "margin": {"l": 50, "r": 10, "t": 30, "b": 60}, "xaxis": {"title": {
              "text": "re-initialized down to layer (cascading, output first)"}, "type": "category"},
              "yaxis": {"title": {"text": "Spearman similarity to trained"}, "range": [-0.2, 1.05]},
              "legend": {"orientation": "h", "y": 1.15, "x": 0}}
    return go.Figure({"data": data, "layout": layout})


def training_curves(epochs: Sequence[Mapping[str, float]]) -> go.Figure:
    """Per-epoch training loss and penalty (left axis) and validation accuracy (right axis)."""
    x = list(range(1, len(epochs) + 1))
    series = (("loss", "loss", "y"), ("penalty", "penalty", "y"), ("val_accuracy", "validation accuracy", "y2"))
    data = [{"type": "scatter", "x": x, "y": [e[key] for e in epochs], "name": label, "yaxis": axis,
             "mode": "lines+markers", "line": {"color": colour}}
            for (key, label, axis), colour in zip(series, COLOURS)]
    layout = {"height": 280, "margin": {"l": 50, "r": 50, "t": 30, "b": 40},
              "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
              "yaxis": {"title": {"text": "loss"}, "rangemode": "tozero"},
              "yaxis2": {"title": {"text": "accuracy"}, "overlaying": "y", "side": "right", "range": [0, 1]},
              "legend": {"orientation": "h", "y": 1.15, "x": 0}}
    return go.Figure({"data": data, "layout": layout})
