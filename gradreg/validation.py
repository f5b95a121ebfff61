"""Input checks shared by the public functions: bad input becomes a ``ValueError`` (or ``TypeError`` for a value of
the wrong kind) that says what was expected, never a RuntimeError from deep inside torch or Captum.

``check_fit`` probes the model with one example, so a shape, channel count or dtype the model cannot take is caught
for any model without knowing its architecture, and labels are checked against its number of classes K.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import threading
import weakref
from typing import Callable

import torch
from torch import nn

from gradreg.descent import Eps, eval_mode, model_device

LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
# model → {(image shape, dtype): K} of probes that passed: a model's architecture does not change, so each
# input kind is probed once per model instead of costing an extra forward on every call (1-image saliency and
# attacks paid up to 2× for it).
_FITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FITS_LOCK = threading.Lock()


def check_model(model: object, name: str = "model") -> nn.Module:
    """``TypeError`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_images(x: object, name: str = "x") -> torch.Tensor:
    """``ValueError`` unless ``x`` is a float tensor ``(N, C, H, W)`` with H, W >= 1, finite, in [0, 1]."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of images (N, C, H, W), got {shape}"
                         f"{f' of dtype {x.dtype}' if isinstance(x, torch.Tensor) else ''}")
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name} must have at least one channel and pixel, got shape {tuple(x.shape)}")
    if x.numel() and not _within_unit_interval(x):
        raise ValueError(f"{name} must lie in [0, 1] and contain no NaN")
    return x


def _within_unit_interval(x: torch.Tensor) -> bool:
    """All of ``x`` in [0, 1] and no NaN (a NaN makes both extremes NaN), in one pass over ``x``."""
    low, high = torch.aminmax(x.detach() if x.requires_grad else x)
    return low.item() >= 0 and high.item() <= 1  # NaN compares False


def check_fit(model: object, x: object, y: object = None) -> int:
    """Check that ``model`` takes images ``x`` (one example is probed, eval mode, no grad) and, if given, that
    ``y`` holds integer labels ``(N,)`` in [0, K); returns K, the number of classes."""
    check_model(model)
    check_images(x)
    k = _classes(model, x)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x) or y.dtype not in LABEL_DTYPES:
            got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be integer labels of shape ({len(x)},), got {got}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(f"labels must be classes in [0, {k}), got values in [{int(y.min())}, {int(y.max())}]")
    return k


def _classes(model: nn.Module, x: torch.Tensor) -> int:
    """K, from a one-example probe of ``model`` on images like ``x`` (remembered per model and input kind)."""
    key = (tuple(x.shape[1:]), x.dtype)  # K does not depend on the device
    with _FITS_LOCK:
        known = _FITS.get(model, {}).get(key)
    if known is not None:
        return known
    device = model_device(model)
    try:
        with torch.no_grad(), eval_mode(model):
            logits = model(x[:1].to(device))
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        reason = str(err).splitlines()[0][:200]
        raise ValueError(f"images of shape {tuple(x.shape)} and dtype {x.dtype} do not fit the model ({reason})") \
            from None
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits (N, K), got shape {tuple(logits.shape)}")
    with _FITS_LOCK:
        _FITS.setdefault(model, {})[key] = logits.shape[1]
    return logits.shape[1]


def check_eps(eps: Eps, n: int | None = None) -> None:
    """``ValueError`` unless ``eps`` is a finite number >= 0 (not a bool) or per-example radii ``(n,)``."""
    if isinstance(eps, torch.Tensor):
        ok = eps.dim() == 1 and (n is None or len(eps) == n) and bool((torch.isfinite(eps) & (eps >= 0)).all())
        if not ok:
            raise ValueError(f"eps as a tensor must hold finite per-example radii >= 0 of shape ({n},), "
                             f"got shape {tuple(eps.shape)}")
        return
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 (or a tensor of per-example radii), got {eps!r}")


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """``ValueError`` unless ``x`` is float images ``(N, C, H, W)`` in [0, 1] and ``y`` integer labels ``(N,)``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of images (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.numel() and not bool((x.min() >= 0) & (x.max() <= 1)):
        raise ValueError("x must lie in [0, 1] (and contain no NaN)")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"y must be integer labels of shape ({len(x)},), got {getattr(y, 'shape', type(y))}")


def check_count(name: str, value: object) -> int:
    """``ValueError`` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_real(name: str, value: object, *, low: float = -math.inf, high: float = math.inf) -> float:
    """``ValueError`` unless ``value`` is a finite real number in [low, high] (not a bool)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not low <= value <= high:
        raise ValueError(f"{name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=256)
def parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """``inspect.signature(fn).parameters``, computed once per function (it costs ~0.1 ms per call)."""
    return dict(inspect.signature(fn).parameters)


def check_knobs(fn: Callable, params: dict, *, what: str) -> None:
    """Keyword knobs of ``fn`` by the type of their defaults: unknown names list the valid ones; bool defaults take
    bools, int defaults integers >= 1, float defaults finite numbers."""
    if not params:
        return
    signature = parameters(fn)
    knobs = [name for name, p in signature.items() if p.kind is p.KEYWORD_ONLY]
    for name, value in params.items():
        if name not in knobs:
            raise ValueError(f"{what} has no parameter {name!r}; valid: {', '.join(knobs) or 'none'}")
        default = signature[name].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{what}: {name} must be True or False, got {value!r}")
        elif isinstance(default, int):
            check_count(f"{what}: {name}", value)
        elif isinstance(default, float):
            check_real(f"{what}: {name}", value)


def check_maps(a: object, name: str = "a") -> torch.Tensor:
    """``ValueError`` unless ``a`` is a float tensor of maps ``(N, C, H, W)`` (signed values allowed)."""
    if not isinstance(a, torch.Tensor) or a.dim() != 4 or not a.is_floating_point():
        shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"{name} must be a float tensor of maps (N, C, H, W), got {shape}")
    return a
