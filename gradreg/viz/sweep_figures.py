"""Plotly figures of a sweep's results: a metric against λ with a band of ± one standard deviation over seeds.

Input is ``gradreg.sweeps.results.lambda_series`` (plain dicts); nothing here imports streamlit or torch.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go

from gradreg.viz.page_figures import COLOURS

PALETTE = COLOURS + ("#000000", "#999999")  # Okabe–Ito's other two: eight roles before a colour repeats


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def sweep_lambda(series: Sequence[Mapping], *, metric: str, percent: bool = True, height: int = 460) -> go.Figure:
    """``metric`` against λ_eff (log axis), one colour per role: the mean over seeds as a line, ± one sd as a band
    (as error bars where only some λ have seeds), every trial as a circle (hover: its name and value). A role trained
    at λ 0 only (plain, adversarial training, distillation) is a dotted horizontal line at its mean, with its band,
    and its trials' circles at the left edge.

    Args:
        series: ``lambda_series`` output; metric: the axis title; percent: accuracies in [0, 1] shown as %.
    """
    lams = sorted({p["lam"] for s in series for p in s["points"] if p["lam"] > 0})
    span = (lams[0] / 2, lams[-1] * 2) if lams else (0.1, 10.0)
    scale = 100.0 if percent else 1.0
    data, shapes = [], []
    for s, colour in zip(series, PALETTE * 4):
        points, name = s["points"], s["role"]
        flat = all(p["lam"] == 0 for p in points)
        xs = list(span) if flat else [p["lam"] for p in points if p["lam"] > 0]
        chosen = points if flat else [p for p in points if p["lam"] > 0]
        means = [p["mean"] * scale for p in chosen] * (2 if flat else 1)
        sds = [p["sd"] * scale for p in chosen] * (2 if flat else 1)
        seeded = [p["n"] > 1 for p in chosen]
        if all(seeded):  # a band where every point has seeds; error bars where only some have
            upper = [m + d for m, d in zip(means, sds)]
            lower = [m - d for m, d in zip(means, sds)]
            data.append({"type": "scatter", "x": xs + xs[::-1], "y": upper + lower[::-1], "fill": "toself",
                         "fillcolor": _rgba(colour, 0.18), "line": {"width": 0}, "hoverinfo": "skip",
                         "showlegend": False, "legendgroup": name})
        bars = {"error_y": {"type": "data", "array": [d if n else None for d, n in zip(sds, seeded)], "width": 5,
                            "visible": True}} if any(seeded) and not all(seeded) else {}
        data.append({"type": "scatter", "x": xs, "y": means, "mode": "lines" if flat else "lines+markers",
                     "name": f"{name} (mean of {max(p['n'] for p in chosen)} seeds)" if any(seeded) else name,
                     "legendgroup": name, "line": {"color": colour, "dash": "dot" if flat else "solid"},
                     "hovertemplate": "λ %{x:g}: mean %{y:.3g}<extra>" + name + "</extra>", **bars})
        trial_x = [(span[0] if flat else p["lam"]) for p in chosen for _ in p["values"]]  # λ-less: the left edge
        data.append({"type": "scatter", "x": trial_x, "y": [v * scale for p in chosen for v in p["values"]],
                     "mode": "markers", "marker": {"color": colour, "size": 6, "symbol": "circle-open"},
                     "text": [t for p in chosen for t in p["trials"]], "legendgroup": name, "showlegend": False,
                     "hovertemplate": "%{text}: %{y:.3g}<extra></extra>"})
    layout = {"height": height, "margin": {"l": 60, "r": 10, "t": 30, "b": 50}, "hovermode": "closest",
              "xaxis": {"type": "log", "title": {"text": "λ_eff (log scale; roles without λ: dotted lines)"},
                        "range": [math.log10(span[0]), math.log10(span[1])], "dtick": 1},
              "yaxis": {"title": {"text": metric + (" (%)" if percent else "")}},
              "legend": {"orientation": "h", "y": 1.1, "x": 0}, "shapes": shapes}
    return go.Figure({"data": data, "layout": layout})
