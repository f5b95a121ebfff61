"""Plotly figures for attribution maps and evaluation records; every function returns a ``go.Figure``.

Maps are drawn pixel-exact (``zsmooth=False``, square pixels) on ColorBrewer's colour-blind-safe RdBu scale,
centred at 0 and clipped by cumulative mass as Captum's visualizer does (Kokhlikyan et al. 2020,
arXiv 2009.07896). Records are tidy dicts (``df.to_dict("records")``). This module never imports streamlit.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import diverging
from plotly.subplots import make_subplots

COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")  # Okabe–Ito, colour-blind safe
OUTLIER_PERC = 2.0  # Captum's default: the top 2 % of |attribution| mass saturates the scale
_RDBU = diverging.RdBu[::-1]  # 11 ColorBrewer classes, blue (negative) → white → red (positive)
SIGNED_SCALE = [[i / (len(_RDBU) - 1), c] for i, c in enumerate(_RDBU)]
UNSIGNED_SCALE = [[i / 5, c] for i, c in enumerate(_RDBU[5:])]  # the white → red half, for maps ≥ 0
DIGIT_SCALE = [[0.0, "rgb(255,255,255)"], [1.0, "rgb(80,80,80)"]]  # light strokes under an overlay
Records = Sequence[Mapping[str, Any]]


def _as_image(a: torch.Tensor | np.ndarray) -> np.ndarray:
    """One map as ``(H, W)`` float64: accepts ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``; channels are summed."""
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    arr = arr.astype(np.float64)
    while arr.ndim > 2:
        arr = arr.sum(0)
    return arr


def clip_level(maps: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, *,
               outlier_perc: float = OUTLIER_PERC) -> float:
    """The |value| at which the maps' cumulative |mass| reaches ``100 − outlier_perc`` % (Captum's rule).

    Args:
        maps: one map or several (their pixels are pooled, which gives a shared scale); outlier_perc in [0, 100).

    Returns:
        A positive float (1.0 for all-zero maps), the colour scale's saturation point.
    """
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc must be in [0, 100), got {outlier_perc!r}")
    items = [maps] if isinstance(maps, (torch.Tensor, np.ndarray)) else list(maps)
    values = np.sort(np.concatenate([np.abs(_as_image(m)).ravel() for m in items]))
    cumulative = np.cumsum(values)
    if cumulative[-1] <= 0:
        return 1.0
    index = np.searchsorted(cumulative, cumulative[-1] * (100 - outlier_perc) / 100)
    return float(values[min(index, len(values) - 1)]) or float(values[-1])


def _map_traces(attribution: np.ndarray, image: np.ndarray | None, *, level: float, signed: bool, overlay: bool,
                name: str, showscale: bool) -> list[go.Heatmap]:
    """A map (and the digit under it when ``overlay``) as crisp heatmaps; hover shows pixel and raw attribution."""
    pixels = image if image is not None else np.full_like(attribution, np.nan)
    scale = SIGNED_SCALE if signed else UNSIGNED_SCALE
    if overlay:  # fade the scale's neutral end to transparent so the digit shows through
        scale = [[s, c.replace("rgb", "rgba").replace(")", f",{min(1.0, abs(2 * s - 1) if signed else s):.2f})")]
                 for s, c in scale]
    traces = []
    if overlay and image is not None:
        traces.append(go.Heatmap(z=image, colorscale=DIGIT_SCALE, zmin=0, zmax=1, zsmooth=False, showscale=False,
                                 hoverinfo="skip", name=f"{name} digit"))
    traces.append(go.Heatmap(
        z=np.clip(attribution / level, -1, 1), zmin=-1 if signed else 0, zmax=1, zsmooth=False,
        colorscale=scale, showscale=showscale, name=name, customdata=np.stack([pixels, attribution], -1),
        colorbar={"title": {"text": "attribution<br>÷ clip level"}},
        hovertemplate="row %{y}, col %{x}<br>pixel %{customdata[0]:.3f}<br>attribution %{customdata[1]:.3g}"
                      "<extra>" + name + "</extra>"))
    return traces


def _square_pixels(fig: go.Figure, count: int) -> None:
    """Square, top-down pixel axes without ticks for the first ``count`` subplots."""
    for i in range(1, count + 1):
        suffix = "" if i == 1 else str(i)
        fig.layout[f"xaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                                            scaleanchor=f"x{suffix}", constrain="domain")


def saliency_grid(maps: Mapping[str, torch.Tensor | np.ndarray], images: torch.Tensor | np.ndarray, *,
                  shared_scale: bool = True, overlay: bool = False, show_images: bool = True,
                  column_titles: Sequence[str] | None = None, outlier_perc: float = OUTLIER_PERC) -> go.Figure:
    """A models × images grid of maps (rows: the digits if ``show_images``, then one row per model).

    Args:
        maps: model name → maps ``(N, C, H, W)``; images: the inputs ``(N, C, H, W)`` in [0, 1].
        shared_scale: one clip level per digit pooled over all models (colours comparable across a row of
            models); False: each panel is scaled on its own. Hover always shows raw values.
    """
    names, n = list(maps), len(images)
    pixels = [_as_image(images[j]) for j in range(n)]
    grid = {name: [_as_image(maps[name][j]) for j in range(n)] for name in names}
    signed = any((a < 0).any() for row in grid.values() for a in row)
    row_titles = (["input"] if show_images else []) + names
    fig = make_subplots(rows=len(row_titles), cols=n, column_titles=list(column_titles or []),
                        horizontal_spacing=0.01, vertical_spacing=0.02)
    for j in range(n):
        shared = clip_level([grid[name][j] for name in names], outlier_perc=outlier_perc) if shared_scale else None
        if show_images:
            fig.add_trace(go.Heatmap(z=pixels[j], colorscale="gray", zmin=0, zmax=1, zsmooth=False, showscale=False,
                                     hovertemplate="pixel %{z:.3f}<extra>input</extra>", name="input"), 1, j + 1)
        first = 1 + int(show_images)
        for i, name in enumerate(names, start=first):
            level = shared or clip_level(grid[name][j], outlier_perc=outlier_perc)
            for trace in _map_traces(grid[name][j], pixels[j], level=level, signed=signed, overlay=overlay,
                                     name=name, showscale=(i, j) == (first, 0)):
                fig.add_trace(trace, i, j + 1)
    _square_pixels(fig, len(row_titles) * n)
    for i, title in enumerate(row_titles):  # horizontal labels left of each row: long model names stay readable
        axis = "" if i * n == 0 else str(i * n + 1)
        fig.add_annotation(text=title, xref=f"x{axis} domain", yref=f"y{axis} domain", x=0, y=0.5, xshift=-6,
                           xanchor="right", showarrow=False)
    side, left = 110, 20 + 7 * max(len(t) for t in row_titles)
    return fig.update_layout(width=left + 100 + side * n, height=60 + side * len(row_titles),
                             margin={"l": left, "r": 10, "t": 40, "b": 10})


def probability_bars(probs: Mapping[str, torch.Tensor | Sequence[float]], *,
                     class_names: Sequence[str] | None = None) -> go.Figure:
    """Grouped bars of class probabilities, one bar group per class and one colour per model.

    Args:
        probs: model name → probabilities ``(K,)`` in [0, 1]; class_names: K labels (default "0" … "K−1").
    """
    fig = go.Figure()
    for name, p in probs.items():
        values = p.detach().cpu().tolist() if isinstance(p, torch.Tensor) else list(p)
        labels = list(class_names or [str(k) for k in range(len(values))])
        fig.add_trace(go.Bar(x=labels, y=values, name=name,
                             hovertemplate="class %{x}: %{y:.3f}<extra>%{fullData.name}</extra>"))
    return fig.update_layout(barmode="group", yaxis={"range": [0, 1], "title": "probability"},
                             xaxis={"title": "class", "type": "category"})


def _groups(records: Records, key: str) -> dict[Any, list[Mapping[str, Any]]]:
    """Records split by ``records[key]``, in order of first appearance."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record[key], []).append(record)
    return groups


def _lines(records: Records, *, x: str, y: str, group: str) -> list[go.Scatter]:
    """One line per group, points sorted by ``x``."""
    traces = []
    for name, rows in _groups(records, group).items():
        rows = sorted(rows, key=lambda r: r[x])
        traces.append(go.Scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], mode="lines+markers", name=str(name)))
    return traces


def accuracy_curve(records: Records, *, x: str = "eps", y: str = "accuracy", group: str = "model") -> go.Figure:
    """Accuracy against attack radius, one line per ``group``.

    Args:
        records: tidy dicts with keys ``group``, ``x`` (ε, L∞ in pixel units of [0, 1] images) and ``y`` in [0, 1].
    """
    fig = go.Figure(_lines(records, x=x, y=y, group=group))
    return fig.update_layout(xaxis={"title": "ε (pixel units of [0, 1] images)"},
                             yaxis={"title": y, "range": [0, 1.02]}, legend={"title": group})


def transfer_heatmap(records: Records, *, eps: float, value: str = "accuracy") -> go.Figure:
    """Transfer matrix at one ε: rows = source model (crafts the attack), columns = target model (evaluated).

    Args:
        records: tidy dicts with keys ``source``, ``target``, ``eps`` and ``value`` (in [0, 1]); eps: which ε.
    """
    rows = [r for r in records if np.isclose(r["eps"], eps)]
    if not rows:
        raise ValueError(f"no records at eps={eps}; available: {sorted({r['eps'] for r in records})}")
    sources = list(dict.fromkeys(r["source"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    z = np.full((len(sources), len(targets)), np.nan)
    for r in rows:
        z[sources.index(r["source"]), targets.index(r["target"])] = r[value]
    fig = go.Figure(go.Heatmap(z=z, x=targets, y=sources, zmin=0, zmax=1, colorscale="Cividis", zsmooth=False,
                               texttemplate="%{z:.0%}", colorbar={"title": {"text": value}},
                               hovertemplate="crafted on %{y}<br>evaluated on %{x}<br>" + value
                                             + " %{z:.3f}<extra></extra>"))
    return fig.update_layout(title=f"ε = {eps:g}", xaxis={"title": "evaluated on (target)", "type": "category"},
                             yaxis={"title": "crafted on (source)", "type": "category", "autorange": "reversed"})


def metric_vs_lambda(records: Records, *, metric: str, lam: str = "lam", group: str = "regularizer") -> go.Figure:
    """A metric against λ_eff, one line per ``group``; λ on a log axis, with λ = 0 runs as dotted baselines.

    Args:
        records: tidy dicts with keys ``lam`` (λ_eff ≥ 0, PAPER.md §1), ``group`` and ``metric``.
    """
    positive = [r for r in records if r[lam] > 0]
    fig = go.Figure(_lines(positive, x=lam, y=metric, group=group))
    for r in (r for r in records if r[lam] == 0):
        fig.add_hline(y=r[metric], line_dash="dot", annotation_text=f"{r[group]} (λ = 0)")
    return fig.update_layout(xaxis={"title": "λ_eff", "type": "log" if positive else "linear"},
                             yaxis={"title": metric}, legend={"title": group})
