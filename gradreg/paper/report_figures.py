"""Figures of the reproduction report (Plotly), and writing them to PNG without ever failing the report.

Figures follow the paper's diagnostics (Ross & Doshi-Velez 2018, PAPER.md §5): transfer curves and matrices,
input-gradient images, iterated-TGSM grids, confidence histograms, gradient-norm box plots, metrics against λ.
PNGs are rendered by kaleido (headless Chromium); when it is unavailable the report says which figure is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
import torch
from PIL import Image
from plotly.subplots import make_subplots

from gradreg.paper.claims import LABELS
from gradreg.paper.reproduce import Reproduction
from gradreg.viz.figures import accuracy_curve, metric_vs_lambda, saliency_grid, transfer_heatmap

LOGP_FLOOR = -60.0  # histograms clip log-probabilities here (plain models reach −∞ in float32)


def _label(role: str) -> str:
    return LABELS.get(role, role)


def transfer_from_plain(rep: Reproduction, *, method: str = "fgsm") -> go.Figure:
    """Accuracy of each model on ``method`` examples crafted on the normal model, against ε."""
    rows = [r | {"model": _label(r["model"])} for r in rep.records["transfer"]
            if r["source"] == "plain" and r["method"] == method]
    return accuracy_curve(rows).update_layout(title=f"{method.upper()} crafted on Normal (Normal's own line is white-box)")


def white_box_curves(rep: Reproduction, *, method: str = "fgsm") -> go.Figure:
    """White-box accuracy against ε (the transfer matrices' diagonal)."""
    rows = [r | {"model": _label(r["model"])} for r in rep.records["transfer"] if r["white_box"] and r["method"] == method]
    return accuracy_curve(rows).update_layout(title=f"white-box {method.upper()}")


def transfer_matrix_figure(rep: Reproduction, *, method: str, eps: float) -> go.Figure:
    """The source × receiver matrix at one ε."""
    rows = [{"source": _label(r["source"]), "target": _label(r["model"]), "eps": r["eps"], "accuracy": r["accuracy"]}
            for r in rep.records["transfer"] if r["method"] == method]
    fig = transfer_heatmap(rows, eps=eps)
    return fig.update_layout(title=f"{method.upper()} transfer, ε = {eps:g}", width=620, height=480)


def gradient_maps(rep: Reproduction) -> go.Figure:
    """∇ₓ log p_y images, one row per model; each panel on its own colour scale (as in the paper's figures:
    a confident normal model's gradients are orders of magnitude smaller, and a shared scale would blank them)."""
    maps = {_label(role): m for role, m in rep.arrays["maps"].items()}
    images = rep.arrays["map_images"]
    return saliency_grid(maps, images["x"], shared_scale=False, column_titles=[f"digit {int(c)}" for c in images["y"]])


def _tile(grid: torch.Tensor) -> np.ndarray:
    """``(K, K, 1, H, W)`` → one ``(K·H, K·W)`` image (rows: original digit, columns: target class)."""
    k, _, _, h, w = grid.shape
    return grid[:, :, 0].permute(0, 2, 1, 3).reshape(k * h, k * w).numpy()


def iterated_grids(rep: Reproduction) -> go.Figure:
    """Iterated-TGSM grids side by side; each panel: row = original digit, column = target class."""
    grids = rep.arrays["grids"]
    cols = min(3, len(grids))
    rows = -(-len(grids) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_label(r) for r in grids],
                        horizontal_spacing=0.02, vertical_spacing=0.06)
    for i, grid in enumerate(grids.values()):
        fig.add_trace(go.Heatmap(z=_tile(grid), colorscale="gray", reversescale=True, zmin=0, zmax=1,
                                 showscale=False), i // cols + 1, i % cols + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig.update_layout(width=300 * cols + 20, height=320 * rows + 60, margin={"l": 10, "r": 10, "t": 60, "b": 10},
                             plot_bgcolor="white",
                             title="iterated TGSM, 10 steps of 0.1 (rows: original digit, columns: target)")


def _ecdf(values: torch.Tensor, *, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of ``values`` ``(M,)`` on at most ``points`` evenly spaced quantiles: (x, fraction ≤ x)."""
    v = values.sort().values.numpy()
    index = np.unique(np.linspace(0, len(v) - 1, min(points, len(v))).astype(int))
    return v[index], (index + 1) / len(v)


def confidence_histograms(rep: Reproduction) -> go.Figure:
    """Distributions of log-probabilities, as cumulative curves (readable with many models and with a distilled
    model whose non-predicted log-probabilities sit far below the others): predicted class (left) and
    non-predicted classes (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["predicted class", "non-predicted classes"])
    for i, (role, d) in enumerate(rep.arrays["confidence"].items()):
        for col, kind in ((1, "predicted"), (2, "other")):
            x, f = _ecdf(d[kind].clamp_min(LOGP_FLOOR))
            fig.add_trace(go.Scatter(x=x, y=f, mode="lines", name=_label(role), legendgroup=role, showlegend=col == 1,
                                     line={"color": qualitative.D3[i % len(qualitative.D3)]}), 1, col)
    fig.update_xaxes(title=f"log p (clipped at {LOGP_FLOOR:g})")
    fig.update_yaxes(title="fraction ≤ x", range=[0, 1.02], col=1)
    return fig.update_layout(width=1000, height=420, title="confidence at T = 1 (cumulative distributions)")


def gradient_norm_boxes(rep: Reproduction) -> go.Figure:
    """Box plots of per-example ‖∇ₓ CE‖₂ (log axis)."""
    fig = go.Figure([go.Box(y=v.clamp_min(1e-12).numpy(), name=_label(role), boxpoints=False)
                     for role, v in rep.arrays["grad_norms"].items()])
    return fig.update_layout(yaxis={"type": "log", "title": "‖∇ₓ CE‖₂ (floored at 1e-12)"}, width=800, height=420,
                             title="input-gradient norms")


def _melt(rep: Reproduction, keys: tuple[str, ...]) -> list[dict]:
    return [{"lam": r["lam"], "measure": k, "value": r[k]} for r in rep.records["lambda"] for k in keys
            if r["lam"] > 0 and r.get(k) is not None]


def lambda_accuracy(rep: Reproduction) -> go.Figure:
    """Grad Reg (y) grid: clean and attacked accuracy against λ_eff (from the zoo cards)."""
    fig = metric_vs_lambda(_melt(rep, ("clean", "fgsm_0.1", "pgd_0.1", "transfer_fgsm_0.2")), metric="value",
                           group="measure")
    return fig.update_layout(yaxis={"title": "accuracy", "range": [0, 1.02]}, title="Grad Reg (y): accuracy vs λ_eff")


def lambda_maps(rep: Reproduction) -> go.Figure:
    """Grad Reg (y) grid: input-gradient map metrics against λ_eff."""
    fig = metric_vs_lambda(_melt(rep, ("total_variation", "stroke_mass", "alignment", "gini")), metric="value",
                           group="measure")
    return fig.update_layout(title="Grad Reg (y): ∇ₓ log p_y map metrics vs λ_eff")


def training_curve(rep: Reproduction) -> go.Figure:
    """Transferred-FGSM and clean accuracy after each epoch, Normal vs GR(y) (PAPER.md §6's training curves)."""
    rows = rep.records["training_curve"]
    if not rows:
        raise LookupError("no training-curve records")
    melted = [{"epoch": r["epoch"], "accuracy": r[key], "curve": f"{_label(r['model'])} {what}"}
              for r in rows for key, what in (("transfer_fgsm", "transferred FGSM"), ("clean", "clean"))]
    fig = accuracy_curve(melted, x="epoch", group="curve")
    eps = rows[0]["eps"]
    return fig.update_layout(xaxis={"title": "epoch", "dtick": 1}, width=800, height=420,
                             title=f"accuracy during training on FGSM (ε = {eps:g}) crafted on the zoo's Normal model")


FIGURES: dict[str, Callable[[Reproduction], go.Figure]] = {
    "white_box_fgsm": white_box_curves,
    "transfer_fgsm_from_plain": transfer_from_plain,
    "transfer_tgsm_from_plain": lambda rep: transfer_from_plain(rep, method="tgsm"),
    "transfer_fgsm_eps0.3": lambda rep: transfer_matrix_figure(rep, method="fgsm", eps=0.3),
    "transfer_tgsm_eps0.3": lambda rep: transfer_matrix_figure(rep, method="tgsm", eps=0.3),
    "input_gradients": gradient_maps,
    "iterated_tgsm": iterated_grids,
    "confidence": confidence_histograms,
    "gradient_norms": gradient_norm_boxes,
    "lambda_accuracy": lambda_accuracy,
    "lambda_maps": lambda_maps,
    "training_curve": training_curve,
}


def shrink_png(path: Path, *, colors: int = 256) -> None:
    """Re-save a PNG with an adaptive palette of ``colors`` colours: charts and digit grids have few colours, and
    the committed report stays small (noisy adversarial images compress badly as RGB)."""
    with Image.open(path) as image:
        small = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=colors)
    small.save(path, optimize=True)


def _reason(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"missing: {type(err).__name__}: {text}"[:300]


def write_figures(rep: Reproduction, out: str | Path) -> dict[str, str]:
    """Render every figure in ``FIGURES`` to ``out/<name>.png`` (one kaleido session for all of them).

    Returns:
        name → ``"<name>.png"`` when written, or ``"missing: <reason>"`` (no data, no kaleido/Chromium…): a
        figure that cannot be made never stops the report.
    """
    out, status, built = Path(out), {}, {}
    for name, build in FIGURES.items():
        try:
            built[name] = build(rep)
        except Exception as err:  # a figure whose records are absent is reported as missing, by name
            status[name] = _reason(err)
    try:
        figs = list(built.values())  # write_images ignores layout sizes unless they are passed explicitly
        pio.write_images(figs, [out / f"{name}.png" for name in built], width=[f.layout.width for f in figs],
                         height=[f.layout.height for f in figs])
        status |= {name: f"{name}.png" for name in built}
        for name in built:
            shrink_png(out / f"{name}.png")
    except Exception:  # kaleido or Chromium unavailable, or one bad figure: find out which, one by one
        for name, fig in built.items():
            try:
                fig.write_image(out / f"{name}.png")
                shrink_png(out / f"{name}.png")
                status[name] = f"{name}.png"
            except Exception as err:  # the report names the reason instead of crashing
                status[name] = _reason(err)
    return {name: status[name] for name in FIGURES}
