"""Plotly figures for the dashboard's interactive panels: image grids, attack rows and λ sweeps (the curves
against ε, layers and epochs are ``curve_figures``', re-exported here). Every function returns a ``go.Figure``;
nothing imports streamlit.

Layouts are written as plain dicts (one validation pass) rather than with ``make_subplots`` and per-axis updates:
a grid of 15 maps builds in a few milliseconds, which keeps a slider move under the dashboard's latency budget.
Maps use ``gradreg.viz.figures``' colour-blind-safe RdBu scale centred at 0 and its Captum-style clip level.
"""

from __future__ import annotations

import math

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from gradreg.viz.curve_figures import accuracy_curves, randomization_curves, training_curves  # noqa: F401
from gradreg.viz.figures import COLOURS, SIGNED_SCALE, clip_level

GAP = 0.012  # fraction of the figure between panels
Cell = Mapping[str, object]  # {"z": (H, W), "kind": "gray" | "signed", "level": float, "name": str}


def _plane(a: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)`` → ``(H, W)`` float (channels summed)."""
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 2:
        a = a.sum(0)
    return a


def _heatmap(cell: Cell, axis: int) -> dict:
    z, name = _plane(cell["z"]), str(cell.get("name", ""))
    suffix = "" if axis == 1 else str(axis)
    trace = {"type": "heatmap", "z": z, "zsmooth": False, "showscale": False, "xaxis": f"x{suffix}",
             "yaxis": f"y{suffix}", "name": name}
    if cell.get("kind", "gray") == "gray":
        return trace | {"colorscale": "gray", "zmin": 0, "zmax": 1,
                        "hovertemplate": f"row %{{y}}, col %{{x}}<br>pixel %{{z:.3f}}<extra>{name}</extra>"}
    level = float(cell.get("level") or clip_level(z))
    return trace | {"colorscale": SIGNED_SCALE, "zmin": -level, "zmax": level,
                    "hovertemplate": f"row %{{y}}, col %{{x}}<br>value %{{z:.3g}}<extra>{name}</extra>"}


def _axes(index: int, row: int, col: int, rows: int, cols: int) -> dict:
    suffix = "" if index == 1 else str(index)
    x0, y1 = col / cols, 1 - row / rows
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "constrain": "domain", "ticks": ""}
    return {f"xaxis{suffix}": hidden | {"domain": [x0 + GAP, x0 + 1 / cols - GAP], "anchor": f"y{suffix}"},
            f"yaxis{suffix}": hidden | {"domain": [y1 - 1 / rows + GAP, y1 - GAP], "anchor": f"x{suffix}",
                                        "autorange": "reversed", "scaleanchor": f"x{suffix}"}}


def image_grid(cells: Sequence[Sequence[Cell | None]], *, row_titles: Sequence[str] = (),
               column_titles: Sequence[str] = (), cell_px: int = 120) -> go.Figure:
    """A grid of crisp, square image panels; ``cells[r][c]`` is None for an empty slot.

    Args:
        cells: rows of ``{"z": (H, W) array, "kind": "gray" (pixels in [0, 1]) | "signed" (RdBu centred at 0,
            saturating at ±``level``; default: Captum's clip level of the map), "name": hover label}``.
        cell_px: height of one row in pixels; the width follows the container.
    """
    rows, cols = len(cells), max((len(r) for r in cells), default=0)
    data, layout, index = [], {}, 0
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            index += 1
            layout |= _axes(index, r, c, rows, cols)
            if cell is not None:
                data.append(_heatmap(cell, index))
    top, left = (28 if column_titles else 8), min(8 + 8 * max(map(len, row_titles), default=0), 200)
    notes = [{"text": t, "x": (c + 0.5) / cols, "y": 1, "yanchor": "bottom", "showarrow": False, "xref": "paper",
              "yref": "paper", "font": {"size": 13}} for c, t in enumerate(column_titles)]
    notes += [{"text": t, "x": 0, "xanchor": "right", "y": 1 - (r + 0.5) / rows, "showarrow": False,
               "xref": "paper", "yref": "paper", "font": {"size": 13}} for r, t in enumerate(row_titles)]
    layout |= {"annotations": notes, "height": top + 8 + cell_px * rows, "showlegend": False,
               "margin": {"l": left, "r": 8, "t": top, "b": 8}, "plot_bgcolor": "rgba(0,0,0,0)"}
    return go.Figure({"data": data, "layout": layout})


def map_grid(images: np.ndarray, maps: Mapping[str, np.ndarray], *, shared_scale: bool = True,
             column_titles: Sequence[str] = (), cell_px: int = 120) -> go.Figure:
    """Rows: the input digits, then one row of signed maps per name; columns: the digits.

    Args:
        images: ``(N, C, H, W)`` in [0, 1]; maps: name → ``(N, C, H, W)`` signed maps of those digits.
        shared_scale: one clip level per digit pooled over all rows (comparable colours down a column).
    """
    names, n = list(maps), len(images)
    levels = [clip_level([maps[name][j] for name in names]) if shared_scale and names else None for j in range(n)]
    cells = [[{"z": images[j], "kind": "gray", "name": "input"} for j in range(n)]]
    cells += [[{"z": maps[name][j], "kind": "signed", "level": levels[j], "name": name} for j in range(n)]
              for name in names]
    return image_grid(cells, row_titles=["input", *names], column_titles=column_titles, cell_px=cell_px)


def method_grid(image: np.ndarray, maps: Mapping[str, Mapping[str, np.ndarray]], *, shared_scale: bool = True,
                image_title: str = "input", cell_px: int = 115) -> go.Figure:
    """One digit: rows = methods, columns = the digit then the models.

    Args:
        image: ``(C, H, W)`` in [0, 1]; maps: method → model name → signed map ``(C, H, W)``.
        shared_scale: one clip level per method row (maps of one method share units across models).
    """
    methods = list(maps)
    models = list(maps[methods[0]]) if methods else []
    cells = []
    for r, method in enumerate(methods):
        level = clip_level(list(maps[method].values())) if shared_scale else None
        cells.append([{"z": image, "kind": "gray", "name": "input"} if r == 0 else None]
                     + [{"z": maps[method][name], "kind": "signed", "level": level, "name": f"{name} · {method}"}
                        for name in models])
    return image_grid(cells, row_titles=methods, column_titles=[image_title, *models], cell_px=cell_px)


def attack_row(panel: Mapping[str, object], *, cell_px: int = 150) -> go.Figure:
    """Original, adversarial, perturbation (colours saturate at ±‖δ‖∞, i.e. amplified), and the saliency maps on the
    clean and the adversarial image (one shared clip level), from ``lessons.panels.attack_panel``."""
    level = clip_level([panel["saliency_clean"], panel["saliency_adv"]])
    linf = float(panel["linf"]) or 1.0
    cells = [[{"z": panel["image"], "kind": "gray", "name": "original"},
              {"z": panel["adversarial"], "kind": "gray", "name": "adversarial"},
              {"z": panel["perturbation"], "kind": "signed", "level": linf, "name": "perturbation"},
              {"z": panel["saliency_clean"], "kind": "signed", "level": level, "name": "saliency (clean)"},
              {"z": panel["saliency_adv"], "kind": "signed", "level": level, "name": "saliency (adversarial)"}]]
    titles = ["original", "adversarial", f"δ ×{1 / linf:.0f}" if panel["linf"] else "δ = 0", "saliency clean",
              "saliency adv."]
    return image_grid(cells, column_titles=titles, cell_px=cell_px)


def probability_pair(panel: Mapping[str, object], *, height: int = 190) -> go.Figure:
    """Class probabilities before (grey) and after (orange) the attack; the label's bar outlined."""
    probs = {"clean": np.asarray(panel["probs_clean"]), "adversarial": np.asarray(panel["probs_adv"])}
    classes = [str(k) for k in range(len(probs["clean"]))]
    outline = [2 if k == panel["label"] else 0 for k in range(len(classes))]
    data = [{"type": "bar", "x": classes, "y": p, "name": name, "marker": {"color": colour,
             "line": {"width": outline, "color": "#000"}}, "hovertemplate": "class %{x}: %{y:.3f}<extra>"
             + name + "</extra>"} for (name, p), colour in zip(probs.items(), ("#999999", COLOURS[1]))]
    layout = {"barmode": "group", "height": height, "margin": {"l": 40, "r": 8, "t": 8, "b": 30},
              "yaxis": {"range": [0, 1], "title": {"text": "probability"}}, "xaxis": {"type": "category"},
              "legend": {"orientation": "h", "y": 1.12, "x": 0}}
    return go.Figure({"data": data, "layout": layout})


SWEEP_PANELS = (
    ("accuracy", (("clean", "clean"), ("fgsm", "FGSM"), ("pgd", "PGD"), ("transfer_fgsm", "transfer FGSM"))),
    ("‖∇ₓ CE‖₂", (("grad_norm", "gradient norm"),)),
    ("max prob.", (("max_prob", "confidence"),)),
)


def lambda_sweep(records: Sequence[Mapping[str, float]], *, lam: float, reference: Mapping[str, float] | None = None,
                 marks: Mapping[float, str] | None = None, height: int = 480) -> go.Figure:
    """Card metrics against λ_eff (log axis): one stacked panel per quantity, the current λ marked by a vertical line.

    Args:
        records: ``zoo_views.lambda_rows`` (``lam`` > 0 and the ``CARD_KEYS``; a ``"spread"`` of sds over seeds
            draws error bars); reference: the plain model's values, drawn as dotted horizontal lines of the same
            colours (with a band of ± one sd when it has a ``"spread"``); marks: λ → label, drawn as dashed
            vertical lines labelled at the top (e.g. the authors' choice) when they fall within the records' λ range.
    """
    data, shapes, layout, n = [], [], {}, len(SWEEP_PANELS)
    lams = [r["lam"] for r in records]
    marks = {at: text for at, text in (marks or {}).items() if lams and min(lams) <= at <= max(lams)}  # on the axis
    for i, (title, series) in enumerate(SWEEP_PANELS, start=1):
        suffix, top = ("" if i == 1 else str(i)), 1 - (i - 1) / n
        layout[f"xaxis{suffix}"] = {"type": "log", "dtick": 1, "anchor": f"y{suffix}", "showticklabels": i == n,
                                    "title": {"text": "λ_eff" if i == n else ""}} | ({"matches": "x"} if i > 1 else {})
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "title": {"text": title}, "domain": [top - 1 / n + 0.07,
                                                                                                  top - 0.02]}
        if title == "accuracy":
            layout[f"yaxis{suffix}"]["range"] = [0, 1.02]
        for j, (key, name) in enumerate(series):
            sds = [r.get("spread", {}).get(key) for r in records]  # ± one sd over the zoo's seeds, where it has them
            data.append({"type": "scatter", "x": lams, "y": [r[key] for r in records], "mode": "lines+markers",
                         "name": name, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "line": {"color": COLOURS[j]},
                         "showlegend": len(series) > 1, "hovertemplate": "λ %{x:g}: %{y:.3g}<extra>" + name + "</extra>",
                         **({"error_y": {"type": "data", "array": sds, "visible": True, "width": 5}}
                            if any(sd is not None for sd in sds) else {})})
            if reference is not None and reference.get(key) is not None:
                shapes.append({"type": "line", "xref": f"x{suffix} domain", "x0": 0, "x1": 1, "yref": f"y{suffix}",
                               "y0": reference[key], "y1": reference[key], "line": {"color": COLOURS[j], "dash": "dot"}})
                if (sd := reference.get("spread", {}).get(key)) is not None:
                    shapes.append({"type": "rect", "xref": f"x{suffix} domain", "x0": 0, "x1": 1, "yref": f"y{suffix}",
                                   "y0": reference[key] - sd, "y1": reference[key] + sd, "line": {"width": 0},
                                   "fillcolor": COLOURS[j], "opacity": 0.12, "layer": "below"})
        shapes += [{"type": "line", "xref": f"x{suffix}", "x0": at, "x1": at, "yref": f"y{suffix} domain", "y0": 0,
                    "y1": 1, "line": {"color": "#666", "width": 1, "dash": "dash"}} for at in marks]
        shapes.append({"type": "line", "xref": f"x{suffix}", "x0": lam, "x1": lam, "yref": f"y{suffix} domain",
                       "y0": 0, "y1": 1, "line": {"color": "#000", "width": 2}})
    annotations = [{"x": math.log10(at), "xref": "x", "y": 1, "yref": "y domain", "text": text, "showarrow": False,
                    "yanchor": "bottom", "font": {"size": 11, "color": "#444"}} for at, text in marks.items()]
    layout |= {"shapes": shapes, "annotations": annotations, "height": height, "margin": {"l": 60, "r": 10, "t": 30, "b": 40},
               "legend": {"orientation": "h", "y": 1.06, "x": 0}, "hovermode": "closest"}
    return go.Figure({"data": data, "layout": layout})
