"""Plotly figures of the dashboard's lessons: the transfer matrix with the paper's numbers beside ours, a cell's
examples, the masking lesson's bars and the iterated-TGSM morph grid. Every function returns a ``go.Figure``.

Ross & Doshi-Velez 2018 (arXiv 1711.09404): transfer matrices (§5 of PAPER.md), iterated-TGSM grids (§7).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from gradreg.viz.page_figures import COLOURS, image_grid

Cell = tuple[str, str]  # (source, evaluated model)


def transfer_figure(records: Sequence[Mapping], *, names: Mapping[str, str], paper: Mapping[Cell, float] = {},
                    selected: Cell | None = None, title: str = "") -> go.Figure:
    """Source × evaluated accuracy heatmap; cells with a paper number show it under ours.

    Args:
        records: ``lessons.transfer_cells`` records (keys source, model, accuracy in [0, 1]); names: key → label;
        paper: (source, model) → the authors' accuracy; selected: a cell to outline.
    """
    if not records:
        raise ValueError("no transfer records to draw")
    keys = list(dict.fromkeys(r["source"] for r in records))
    z = np.full((len(keys), len(keys)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for r in records:
        i, j = keys.index(r["source"]), keys.index(r["model"])
        z[i, j] = r["accuracy"]
        ref = paper.get((r["source"], r["model"]))
        text[i, j] = f"{r['accuracy']:.0%}" + (f"<br><i>paper {ref:.0%}</i>" if ref is not None else "")
    labels = [names.get(k, k) for k in keys]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, zmin=0, zmax=1, colorscale="Cividis", zsmooth=False,
                               text=text, texttemplate="%{text}", textfont={"size": 13},
                               colorbar={"title": {"text": "accuracy"}, "tickformat": ".0%"},
                               hovertemplate="crafted on %{y}<br>evaluated on %{x}<br>accuracy %{z:.1%}"
                                             "<extra></extra>"))
    shapes = []
    if selected is not None and selected[0] in keys and selected[1] in keys:
        i, j = keys.index(selected[0]), keys.index(selected[1])
        shapes.append({"type": "rect", "x0": j - 0.5, "x1": j + 0.5, "y0": i - 0.5, "y1": i + 0.5,
                       "line": {"color": COLOURS[1], "width": 4}, "xref": "x", "yref": "y"})
    side = 140 + 90 * len(keys)
    return fig.update_layout(title=title, height=side, shapes=shapes, margin={"t": 40, "b": 10},
                             xaxis={"title": "evaluated on", "type": "category", "side": "top"},
                             yaxis={"title": "crafted on (source)", "type": "category", "autorange": "reversed"})


def cell_figure(examples: Mapping, *, cell_px: int = 110) -> go.Figure:
    """A cell's examples (``lessons.cell_examples``): clean image, crafted image and δ per column."""
    clean, crafted = examples["x"], examples["x_adv"]
    delta = crafted - clean
    level = float(np.abs(delta).max()) or 1.0
    titles = [f"#{i}: y={y} · src {s} · eval {m}" for i, y, s, m in
              zip(examples["index"], examples["label"], examples["source_pred"], examples["model_pred"])]
    rows = [[{"z": a, "kind": "gray", "name": t} for a, t in zip(clean, titles)],
            [{"z": a, "kind": "gray", "name": t} for a, t in zip(crafted, titles)],
            [{"z": d, "kind": "signed", "level": level, "name": t} for d, t in zip(delta, titles)]]
    return image_grid(rows, row_titles=["clean", "crafted", "δ"],
                      column_titles=[f"{y}→{m}" for y, m in zip(examples["label"], examples["model_pred"])],
                      cell_px=cell_px)


def masking_bars(rows: Sequence[Mapping], *, labels: Mapping[str, str], height: int = 380) -> go.Figure:
    """Accuracy per model under each attack (``lessons.masking.lesson_row`` records; None = not measured)."""
    columns = ("fgsm", "pgd", "square", "transfer")
    bars = [go.Bar(name=labels.get(c, c), x=[r["model"] for r in rows],
                   y=[r[c] if r[c] is not None else np.nan for r in rows], marker_color=COLOURS[k],
                   text=[f"{r[c]:.0%}" if r[c] is not None else "n/a" for r in rows], textposition="outside",
                   hovertemplate="%{x}<br>" + labels.get(c, c) + " %{y:.1%}<extra></extra>")
            for k, c in enumerate(columns)]
    return go.Figure(bars).update_layout(barmode="group", height=height, yaxis={"range": [0, 1.12],
                                         "tickformat": ".0%", "title": "accuracy"},
                                         legend={"orientation": "h", "y": 1.12}, margin={"t": 40, "b": 10})


def morph_figure(result: Mapping, *, title: str = "", gap: int = 2) -> go.Figure:
    """The iterated-TGSM grid (``lessons.morph_grid``) as one mosaic: row = original class, column = target; each
    cell's corner names the judge's reading (green when it is the target), or the model's without a judge."""
    grid = np.asarray(result["grid"], dtype=np.float64).sum(2)  # (K, K, H, W), channels summed
    k, h, w = grid.shape[0], grid.shape[2], grid.shape[3]
    mosaic = np.full((k * (h + gap) - gap, k * (w + gap) - gap), np.nan)
    for r in range(k):
        for c in range(k):
            mosaic[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = grid[r, c]
    reading = result["judge_pred"] if result["judge_pred"] is not None else result["model_pred"]
    notes = [{"x": c * (w + gap) + w - 2, "y": r * (h + gap) + 3, "text": str(reading[r][c]), "showarrow": False,
              "font": {"size": 11, "color": COLOURS[2] if reading[r][c] == c else COLOURS[1]}, "xanchor": "right",
              "bgcolor": "rgba(255,255,255,0.85)", "borderpad": 0}
             for r in range(k) for c in range(k) if r != c]
    centres = [i * (h + gap) + h / 2 for i in range(k)]
    heat = go.Heatmap(z=mosaic, colorscale="gray", zmin=0, zmax=float(np.shape(result["grid"])[2]),
                      showscale=False, zsmooth=False, hoverinfo="skip")
    return go.Figure(heat).update_layout(
        title=title, height=120 + 42 * k, annotations=notes, margin={"t": 40, "b": 50, "l": 60, "r": 10},
        xaxis={"tickvals": centres, "ticktext": [str(c) for c in range(k)], "title": "target class",
               "showgrid": False, "zeroline": False, "constrain": "domain"},
        yaxis={"tickvals": centres, "ticktext": [str(c) for c in result["classes"]], "title": "original",
               "autorange": "reversed", "scaleanchor": "x", "showgrid": False, "zeroline": False},
        plot_bgcolor="rgba(0,0,0,0)")
