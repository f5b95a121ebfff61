"""Attribution maps: one verb, ``saliency``, over the ``SALIENCY_METHODS`` registry (signed, shape of ``x``).

The paper's views (Ross & Doshi-Velez, AAAI 2018, https://arxiv.org/abs/1711.09404) are input gradients of
log-probabilities or of the loss; the others go through Captum (Kokhlikyan et al. 2020, arXiv 2009.07896) and
explain the target *logit*, Captum's convention. Hook-based methods run on a private copy of the model, so a
frozen model shared by many threads never carries a hook.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator, Union

import torch
import torch.nn.functional as F
from torch import nn

from gradreg.attacks.descent import loss_gradient
from gradreg.core.modules import eval_mode, model_device, module_tree, tree_copy
from gradreg.core.validation import check_fit, check_knobs

Target = Union[str, int, torch.Tensor]
TARGETS = ("pred", "true")
CHUNK = 1024  # images per forward inside Integrated Gradients and Occlusion (bounds memory, amortizes calls)


def _captum():
    """Captum's attribution classes, imported on first use: the import costs about a second (it pulls in
    matplotlib), which the dashboard's cold start should not pay for the gradient views."""
    import captum.attr

    return captum.attr


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """K, read from a final ``nn.Linear`` when there is one (no forward pass), else from the logits of one image."""
    last = model[-1] if isinstance(model, nn.Sequential) and len(model) else None
    if isinstance(last, nn.Linear):
        return last.out_features
    with torch.no_grad(), eval_mode(model):
        return model(x[:1]).shape[1]


def resolve_target(model: nn.Module, x: torch.Tensor, target: Target, y: torch.Tensor | None = None, *,
                   num_classes: int | None = None) -> torch.Tensor:
    """The class index per example, ``(N,)`` int64 on ``x``'s device (a tensor target may be returned as is).

    Args:
        x: images ``(N, C, H, W)``; target: ``"pred"`` (the model's argmax), ``"true"`` (needs ``y``), an int
            in [0, K) or an ``(N,)`` integer tensor; y: labels ``(N,)``, used only by ``"true"``.
        num_classes: K when the caller knows it (``check_fit`` returns it), else it is read from the model.
    """
    if isinstance(target, str) and target == "pred":
        with torch.no_grad(), eval_mode(model):
            return model(x).argmax(1)  # (N,)
    n, k = len(x), num_classes or _num_classes(model, x)

    def valid() -> str:  # built only for an error message: this function runs on every 1-image call
        return f"valid targets: {', '.join(map(repr, TARGETS))}, an int in [0, {k}) or an ({n},) tensor"

    if isinstance(target, str):
        if target != "true":
            raise ValueError(f"unknown target {target!r}; {valid()}")
        if y is None:
            raise ValueError("target='true' needs the labels y")
        target = y
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise ValueError(f"invalid target {target!r}; {valid()}")
    t = target.to(x.device) if isinstance(target, torch.Tensor) else torch.tensor(target, device=x.device)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dim() > 1 or (t.dim() == 1 and len(t) != n):
        raise ValueError(f"invalid target of shape {tuple(t.shape)} and dtype {t.dtype}; {valid()}")
    if t.numel():  # a few values are read at once, many in one pass
        low, high = (min(v := t.flatten().tolist()), max(v)) if t.numel() <= 64 else torch.aminmax(t)
        if low < 0 or high >= k:
            raise ValueError(f"target out of range; {valid()}")
    return t if t.dim() == 1 and t.dtype == torch.int64 else t.long().expand(n).clone()


def _input_grad(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """∇ₓ Σ_n objective(logits)_n, with the gradient taken w.r.t. a fresh leaf (nothing lands on ``x``)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(model(x)).sum(), x)
    return g


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇ₓ log p_target(x): the paper's "input gradient" images (PAPER.md §5, §7)."""
    return _input_grad(model, x, lambda z: F.log_softmax(z, 1).gather(1, target[:, None]))


def sum_log_prob_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇ₓ Σ_k log p_k(x), the label-free Grad Reg (1/K) view (up to the factor −1/K); ``target`` is unused."""
    return _input_grad(model, x, lambda z: F.log_softmax(z, 1).sum(1))


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, steps: int = 32,
                         baseline: float = 0.0) -> torch.Tensor:
    """Integrated Gradients of the target logit (Sundararajan et al. 2017, arXiv 1703.01365), Gauss–Legendre.

    Args:
        steps: points on the straight path; baseline: the constant image the path starts from (0 = black).
    """
    chunk = len(x) * max(2, CHUNK // max(len(x), 1))
    explainer = _captum().IntegratedGradients(model)
    return explainer.attribute(x, baselines=baseline, target=target, n_steps=steps, internal_batch_size=chunk)


def smoothgrad(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, samples: int = 16, stdev: float = 0.15,
               seed: int = 0) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017, arXiv 1706.03825): the mean signed logit gradient (Captum ``Saliency``)
    over ``samples`` copies of ``x`` plus Gaussian noise of std ``stdev`` (in [0, 1] pixel units: 15 % of range).

    This is Captum's ``NoiseTunnel(Saliency, nt_type="smoothgrad")`` computation, but the noise comes from a
    private generator seeded by ``seed`` (NoiseTunnel draws from torch's global RNG, which threads share). Every
    example receives the same noise draws, so results do not depend on batch composition.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, *x.shape[1:]), generator=generator).to(x) * stdev  # (S, C, H, W), batch-shared
    noisy = (x.detach()[None] + noise[:, None]).flatten(0, 1)  # (S·N, C, H, W): every sample in a few large calls
    targets, explainer = target.repeat(samples), _captum().Saliency(model)
    n = max(len(x), CHUNK // max(len(x), 1) * len(x), 1)  # images per call: whole copies of the batch
    grads = [explainer.attribute(noisy[i:i + n], target=targets[i:i + n], abs=False) for i in range(0, len(noisy), n)]
    return torch.cat(grads).view(samples, *x.shape).mean(0)


def input_x_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """x ⊙ ∇ₓ logit_target (Shrikumar et al. 2016, arXiv 1605.01713)."""
    return _captum().InputXGradient(model).attribute(x, target=target)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al. 2015, arXiv 1412.6806) of the target logit; hooks ReLUs."""
    return _captum().GuidedBackprop(model).attribute(x, target=target)


def deeplift(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, baseline: float = 0.0) -> torch.Tensor:
    """DeepLIFT rescale rule (Shrikumar et al. 2017, arXiv 1704.02685) against a constant ``baseline`` image."""
    return _captum().DeepLift(model).attribute(x, baselines=baseline, target=target)


def occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, window: int = 4, stride: int = 2,
              baseline: float = 0.0) -> torch.Tensor:
    """Drop in the target logit when a ``window``×``window`` patch is set to ``baseline`` (Zeiler & Fergus 2014,
    arXiv 1311.2901), averaged over the patches covering each pixel; ``stride`` in pixels."""
    channels = x.shape[1]
    return _captum().Occlusion(model).attribute(x, sliding_window_shapes=(channels, window, window),
                                      strides=(channels, stride, stride), baselines=baseline, target=target,
                                      perturbations_per_eval=max(1, CHUNK // max(len(x), 1)))


def last_conv_layer(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` in registration order; ValueError for models without one (mlp, linear)."""
    known = _LAST_CONV.get(model)  # a private copy's tree never changes: looked up once
    if known is not None:
        return known
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"gradcam needs a Conv2d layer and {type(model).__name__} has none (e.g. mlp, linear); "
                         f"choose another method: {', '.join(sorted(set(SALIENCY_METHODS) - {'gradcam'}))}")
    if model in _COPIES:
        _LAST_CONV[model] = convs[-1]
    return convs[-1]


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, relu: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017, arXiv 1610.02391) on the last conv layer's output, bilinearly upsampled
    to the input size and repeated over channels; ``relu`` keeps only positive evidence, as in the paper."""
    attr = _captum()
    cam = attr.LayerGradCam(model, last_conv_layer(model)).attribute(x, target=target, relu_attributions=relu)
    cam = attr.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")  # (N, 1, H, W)
    return cam if x.shape[1] == 1 else cam.expand_as(x).contiguous()


SALIENCY_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "input_gradient": input_gradient,
    "loss_gradient": loss_gradient,  # ∇ₓ CE(target) = −input_gradient; "true": FGSM's direction, Grad Reg (y)'s
    "sum_log_prob_gradient": sum_log_prob_gradient,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "input_x_gradient": input_x_gradient,
    "guided_backprop": guided_backprop,
    "deeplift": deeplift,
    "occlusion": occlusion,
    "gradcam": gradcam,
}
# Methods that attach hooks or attributes to modules: they run on a private copy of the module tree.
HOOKED_METHODS = frozenset({"guided_backprop", "deeplift", "gradcam"})
POOL_SIZE = 4  # idle private copies kept per model (one per concurrent call is made; more are dropped)


def _unhooked(module: nn.Module, state: dict) -> type:
    """``tree_copy``'s edit for a private copy: eval mode, no hooks; the parameter and buffer dicts stay shared (a
    tensor replaced in the model is replaced in the copy too), and hooks or attributes set on the copy never reach
    the model."""
    state.update({k: type(v)() for k, v in state.items() if "hooks" in k and isinstance(v, dict)})
    state["training"] = False
    return type(module)


def _tree_copy(model: nn.Module) -> nn.Module:
    copy = tree_copy(model, _unhooked)
    _COPIES.add(copy)
    return copy


_COPIES: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # private copies: nothing adds or removes their modules
_LAST_CONV: "weakref.WeakKeyDictionary[nn.Module, nn.Conv2d]" = weakref.WeakKeyDictionary()


_POOLS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


@contextmanager
def private_copy(model: nn.Module) -> Iterator[nn.Module]:
    """A copy of ``model`` (``_tree_copy``) that no other call uses meanwhile. Copies are reused, as making one
    costs a third of a 1-image Grad-CAM call. A copy is kept for reuse only after a call that returned normally (one
    that raised may have left a hook on it), and only while the model's tree has the same modules."""
    layout = tuple(map(id, module_tree(model)))
    with _POOLS_LOCK:
        known, idle = _POOLS.get(model, (None, []))
        copy = idle.pop() if known == layout and idle else None
    copy = _tree_copy(model) if copy is None else copy
    yield copy
    with _POOLS_LOCK:
        entry = _POOLS.get(model)
        if entry is None or entry[0] != layout:
            entry = _POOLS[model] = (layout, [])
        if len(entry[1]) < POOL_SIZE:
            entry[1].append(copy)


def saliency(model: nn.Module, x: torch.Tensor, target: Target, method: str = "input_gradient", *,
             y: torch.Tensor | None = None, **params) -> torch.Tensor:
    """Attribution map of ``method`` for each example's ``target`` class, signed, same shape as ``x``.

    The model runs in eval mode (its previous mode is restored); ``x``, its ``.grad`` and the parameters'
    ``.grad`` are left untouched. Methods in ``HOOKED_METHODS`` run on a private copy of the module tree that
    shares the weights, so concurrent calls on one shared model neither see nor leave hooks.

    Args:
        x: images ``(N, C, H, W)`` in [0, 1]; target: ``"pred"``, ``"true"`` (needs ``y``), an int or ``(N,)``.
        method: a key of ``SALIENCY_METHODS``; y: labels ``(N,)``; params: the method's keyword knobs.

    Returns:
        ``(N, C, H, W)`` float tensor on ``x``'s device, in the units of the explained output per pixel.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"unknown saliency method {method!r}; valid: {', '.join(sorted(SALIENCY_METHODS))}")
    k = check_fit(model, x, y if isinstance(y, torch.Tensor) else None)
    check_knobs(SALIENCY_METHODS[method], params, what=method)
    device = model_device(model)
    inputs = x.detach().to(device).requires_grad_(True)  # a private leaf: Captum need not toggle or warn
    labels = y.to(device) if isinstance(y, torch.Tensor) else y
    t = resolve_target(model, inputs, target, labels, num_classes=k)  # on the inputs' device
    # Hooks and DeepLift's attributes stay on a private copy, made in eval mode; the shared model is put in eval mode.
    with private_copy(model) if method in HOOKED_METHODS else eval_mode(model) as model, torch.enable_grad():
        result = SALIENCY_METHODS[method](model, inputs, t, **params)
    return (result.detach() if result.requires_grad else result).to(x.device)
