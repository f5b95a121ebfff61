"""Each saliency method through ``gradreg.explain.saliency`` against the bare Captum call it wraps, 1 image and a batch.

Both get the same explicit target tensor. The paper's gradient views (∇ log p, ∇ CE, ∇ Σ log p) have no Captum
class of their own; their peer is Captum's ``Saliency`` (the target logit's gradient, one forward and backward).
"""

from __future__ import annotations

import torch

from benchmarks.report import row
from benchmarks.timing import interleaved, median

TARGET = 1.1  # overhead: gradreg's time over the bare Captum call


def _captum_calls(model: torch.nn.Module) -> dict:
    from captum.attr import (DeepLift, GuidedBackprop, InputXGradient, IntegratedGradients, LayerAttribution,
                             LayerGradCam, NoiseTunnel, Occlusion, Saliency)

    from gradreg.explain.saliency import CHUNK, last_conv_layer

    def gradient(x, t):
        return Saliency(model).attribute(x, target=t, abs=False)

    def gradcam(x, t):
        cam = LayerGradCam(model, last_conv_layer(model)).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")

    return {
        "input_gradient": gradient, "loss_gradient": gradient, "sum_log_prob_gradient": gradient,
        "integrated_gradients": lambda x, t: IntegratedGradients(model).attribute(
            x, baselines=0.0, target=t, n_steps=32, internal_batch_size=len(x) * max(2, CHUNK // len(x))),
        "smoothgrad": lambda x, t: NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=16, stdevs=0.15, target=t, abs=False),
        "input_x_gradient": lambda x, t: InputXGradient(model).attribute(x, target=t),
        "guided_backprop": lambda x, t: GuidedBackprop(model).attribute(x, target=t),
        "deeplift": lambda x, t: DeepLift(model).attribute(x, baselines=0.0, target=t),
        "occlusion": lambda x, t: Occlusion(model).attribute(
            x, sliding_window_shapes=(x.shape[1], 4, 4), strides=(x.shape[1], 2, 2), baselines=0.0, target=t,
            perturbations_per_eval=max(1, CHUNK // len(x))),
        "gradcam": gradcam,
    }


def measure(model: torch.nn.Module, x: torch.Tensor, *, device: torch.device, batches: tuple[int, ...],
            repeats: int, methods: tuple[str, ...] | None = None) -> tuple[list, dict]:
    """Rows (gradreg over Captum per method and batch size) and the raw seconds; 1-image cases get four times
    ``repeats`` rounds."""
    from gradreg.explain.saliency import SALIENCY_METHODS, saliency

    peers = _captum_calls(model)
    names = [m for m in (methods or SALIENCY_METHODS) if m in peers]
    rows, raw = [], {}
    for n in batches:
        xb = x[:n].clone()
        with torch.no_grad():
            t = model(xb).argmax(1)
        cases = {}
        for name in names:
            cases[name] = lambda name=name: saliency(model, xb, t, name)
            cases[f"captum {name}"] = lambda name=name: peers[name](xb.clone(), t)
        # A 1-image call takes about a millisecond, where other processes' load moves a round's median by ±10 %:
        # four times the rounds (about a second in all) keep the 1.1× target from being judged on noise.
        times = interleaved(cases, device=device, repeats=repeats if n > 1 else 4 * repeats)
        seconds = {case: median(v) for case, v in times.items()}
        raw[n] = {"seconds": seconds, "all_seconds": times}
        for name in names:
            ratio = seconds[name] / seconds[f"captum {name}"]
            peer = "captum Saliency" if name.endswith("gradient") and name != "input_x_gradient" else "bare Captum call"
            rows.append(row("saliency", f"{name}, {n} image{'s' if n > 1 else ''}", peer, ratio,
                            target=f"≤ {TARGET}×", met=ratio <= TARGET, seconds=seconds[name],
                            peer_seconds=seconds[f"captum {name}"]))
    return rows, raw
