"""Shareable views: which widget values a page's URL carries and how they are read and written (the lesson presets
built on them: ``gradreg.ui.presets``).

No Streamlit here; ``gradreg.ui.share`` / ``ui.sync_url`` do the Streamlit side. A URL parameter is named by the widget
key it sets (``?attack.method=pgd&attack.eps.pgd.linf=0.2``). Values are plain text: numbers as ``%g``, booleans as
``1``/``0``, lists as repeated parameters (``?attack.models=plain&attack.models=grad_y_10``; a hand-written
``plain,grad_y_10`` is read too, an empty list is ``?attack.models=``), models by their zoo name when they have one
(else by checkpoint id). ``?teacher=1`` locks the advanced controls (see ``ui.advanced``).

Why not Streamlit 1.67's own ``bind="query-params"``: it writes a select widget's *label* (our model labels are
long, change with the zoo, and percent-encode badly), drops a bad value silently where a teacher's link should say
what it ignored, and AppTest does not see the URL it writes, so a round trip could not be tested.

``field(key)`` knows every shareable key and checks what can be checked without the running app: the type, the
registries (attacks, norms, saliency methods, regularizers, digit classes), an attack's size against
``lessons.panels.size_range`` (a slider raises on a value outside its range) and the attack knobs against their
limits. Choices only a widget knows
(the zoo's λ grid, a select slider's steps) are checked by ``ui.sync_url`` after the widgets ran.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Mapping

from gradreg.ui.limits import KNOB_CAPS, limit

TEACHER = "teacher"  # ?teacher=1: a class view, advanced controls hidden

def knob_limit(name: str) -> int:
    """The largest value of an integer attack knob: this server's cap (``gradreg.ui.limits``), else 1000."""
    return limit(KNOB_CAPS[name]) if name in KNOB_CAPS else 1000


MODELS = "models"  # the choices of a model list: the running app's usable models
DIGITS = tuple(range(10))


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not 1 or 0")


def _target(text: str) -> str | int:
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class Field:
    """How one widget key travels in the URL: ``parse`` turns one text value into the widget's value."""

    parse: Callable[[str], Any]
    many: bool = False  # a list (multiselect, pills)
    choices: tuple | str | None = None  # valid values, or MODELS
    low: float | None = None
    high: float | None = None


@functools.cache
def _registries() -> SimpleNamespace:
    """The registries the fields check against. Their modules import torch, so they are read when a URL value is
    first checked, not when a page's frame is drawn (a page that shares nothing never needs them)."""
    from gradreg.attacks import ATTACKS, NORMS, TARGETS
    from gradreg.explain.saliency import SALIENCY_METHODS
    from gradreg.lessons.panels import size_range
    from gradreg.training.regularizers import REGULARIZERS

    return SimpleNamespace(ATTACKS=ATTACKS, NORMS=NORMS, TARGETS=TARGETS, SALIENCY_METHODS=SALIENCY_METHODS,
                           size_range=size_range, REGULARIZERS=REGULARIZERS)


@functools.cache
def _exact() -> dict[str, Field]:
    r = _registries()
    return {
        "lambda.regularizer": Field(str, choices=tuple(r.REGULARIZERS)),
        "lambda.eps": Field(float, low=0.0, high=1.0),
        "attack.mode": Field(str, choices=("gallery", "index")),
        "attack.index": Field(int, low=0),
        "attack.class": Field(int, choices=DIGITS),
        "attack.example": Field(int, low=0),
        "attack.method": Field(str, choices=tuple(r.ATTACKS)),
        "attack.saliency": Field(str, choices=tuple(r.SALIENCY_METHODS)),
        "attack.target": Field(_target, choices=(*r.TARGETS, *DIGITS)),
        "curves.method": Field(str, choices=tuple(r.ATTACKS)),
        "curves.n": Field(int, low=16, high=1000),  # hidden in teacher mode: the page's bounds
        "curves.top": Field(float, low=0.0, high=1.0),
        "saliency.methods": Field(str, many=True, choices=tuple(r.SALIENCY_METHODS)),
        "saliency.n": Field(int, low=8, high=256),
        "saliency.metrics": Field(_flag),
        "saliency.random": Field(str, choices=tuple(r.SALIENCY_METHODS)),
        # The teaching pages. Bounds repeat a slider's range (a slider raises outside it) or the budget of a control
        # that teacher mode hides (its link value is then used as is, so it must stay within what the page allows).
        "draw.eps": Field(float, low=0.0, high=0.5),
        "draw.source": Field(str, choices=("draw", "upload")),
        "quiz.eps": Field(float, low=0.0, high=1.0),
        "quiz.seed": Field(int, low=0),  # the question: a link with a seed asks the same one
        "story.step": Field(int, low=0),
        "story.eps": Field(float, low=0.0, high=1.0),
        "story.lam": Field(float, low=0.0),
        "transfer.method": Field(str, choices=tuple(r.ATTACKS)),
        "transfer.eps": Field(float, low=0.0, high=1.0),
        "transfer.source": Field(str, choices=MODELS),
        "transfer.evaluated": Field(str, choices=MODELS),
        "transfer.n": Field(int, low=16, high=512),
        "masking.eps": Field(float, low=0.0, high=1.0),
        "masking.n": Field(int, low=16, high=256),
        "masking.steps": Field(int, low=5, high=100),
        "masking.queries": Field(int, low=50, high=2000),
        "morphs.judge": Field(str, choices=MODELS),
        "morphs.steps": Field(int, low=1, high=20),
        "morphs.eps": Field(float, low=0.0, high=1.0),
        "morphs.n": Field(int, low=16, high=512),
    }


def field(key: str) -> Field | None:
    """The ``Field`` of a shareable widget key, or None when the key does not travel in URLs."""
    exact, r = _exact(), _registries()
    if key in exact:
        return exact[key]
    if match := re.fullmatch(r"(\w+)\.models", key):
        return Field(str, many=True, choices=MODELS)
    if match := re.fullmatch(r"(\w+)\.(classes|example|shared)", key):
        return {"classes": Field(int, many=True, choices=DIGITS), "example": Field(int, low=1),
                "shared": Field(_flag)}[match[2]]
    if (match := re.fullmatch(r"lambda\.lam\.(\w+)", key)) and match[1] in r.REGULARIZERS:
        return Field(float, low=0.0)
    if (match := re.fullmatch(r"attack\.eps\.(\w+)\.(\w+)", key)) and match[1] in r.ATTACKS and match[2] in r.NORMS:
        return Field(float, low=0.0, high=r.size_range(match[1], match[2])[1])
    if (match := re.fullmatch(r"attack\.(\w+)\.(\w+)", key)) and match[1] in r.ATTACKS:
        spec = r.ATTACKS[match[1]]  # its size knob travels as attack.eps.<method>.<norm>, the slider's key
        return _knob(spec.params[match[2]], match[2]) if match[2] in spec.params and match[2] != spec.size else None
    return None


def _knob(default: object, name: str) -> Field | None:
    """An attack knob's field, from its default's type (as ``ui._knob`` draws it)."""
    if name == "norm":
        return Field(str, choices=_registries().NORMS)
    if isinstance(default, bool):
        return Field(_flag)
    if isinstance(default, int):
        return Field(int, low=1, high=knob_limit(name))
    if isinstance(default, float):
        return Field(float, low=0.0, high=1.0)
    return None


def owned(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``key`` belongs to a page sharing ``prefixes`` (whole keys, or prefixes ending in '.')."""
    return isinstance(key, str) and any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def decode(key: str, raw: str | list[str], *, models: Mapping[str, str] = {}) -> Any:
    """The widget value of URL parameter ``key`` (its value, or its repeated values); ``models``: name or id → id.

    Raises:
        ValueError: the key is unknown, or a value does not parse, is out of range or not a valid choice.
    """
    spec = field(key)
    if spec is None:
        raise ValueError(f"{key} is not a setting of this app")
    raw = [raw] if isinstance(raw, str) else list(raw)
    texts = [t for part in raw for t in part.split(",") if t] if spec.many else raw[-1:]
    if not spec.many and not texts:
        raise ValueError(f"{key} has no value")
    try:
        values = [models.get(t, t) if spec.choices == MODELS else spec.parse(t.strip()) for t in texts]
    except ValueError:
        kind = {"int": "a whole number", "float": "a number", "_flag": "1 or 0"}.get(spec.parse.__name__, "valid")
        raise ValueError(f"{key}={','.join(raw)} is not {kind}") from None
    valid, names = spec.choices, spec.choices
    if spec.choices == MODELS:  # checked against ids, listed by zoo name (ids only for models without one)
        valid, names = set(models.values()), sorted(n for n, i in models.items() if n != i) or sorted(models)
    for value in values:
        if valid is not None and value not in valid:
            listed = ", ".join(map(str, list(names)[:12])) + (", …" if len(names) > 12 else "")
            raise ValueError(f"{key}: {value!r} is not one of {listed}")
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            high = "∞" if spec.high is None else f"{spec.high:g}"
            raise ValueError(f"{key}={value:g} is outside [{spec.low:g}, {high}]")
    return values if spec.many else values[0]


def encode(key: str, value: Any, *, names: Mapping[str, str] = {}) -> list[str]:
    """URL values of a widget value (inverse of ``decode``); ``names``: model id → short name."""
    spec = field(key)
    values = list(value) if spec is not None and spec.many else [value]
    if not values:
        return [""]
    text = {bool: lambda v: "1" if v else "0", float: lambda v: f"{v:g}"}
    return [names.get(v, v) if spec is not None and spec.choices == MODELS else text.get(type(v), str)(v)
            for v in values]


def read(params: Mapping[str, str | list[str]], *, models: Mapping[str, str] = {}) -> tuple[dict, list[str]]:
    """Decode every parameter: (key → widget value, one message per value that was dropped)."""
    values, errors = {}, []
    for key, raw in params.items():
        try:
            values[key] = decode(key, raw, models=models)
        except ValueError as err:
            errors.append(str(err))
    return values, errors


def view_params(values: Mapping[str, Any], *, link: Mapping[str, list[str]], applied: Mapping[str, Any],
                base: dict[str, list[str]], names: Mapping[str, str] = {}) -> dict[str, list[str]]:
    """The URL parameters of a view: each value that came from the link (``applied``, decoded from ``link``), in the
    link's own spelling while unchanged, and each other value that differs from ``base``, the value first seen on
    this page (its default; recorded here on first sight). So an untouched page has no parameters and an unchanged
    view keeps its URL. ``values``: widget key → current value; ``names``: model id → short name."""
    wanted = {}
    for key, current in values.items():
        value = encode(key, current, names=names)
        if key in applied:
            wanted[key] = list(link[key]) if current == applied[key] else value
        elif value != base.setdefault(key, value):
            wanted[key] = value
    return wanted


def teacher(params: Mapping[str, list[str]]) -> bool:
    """Whether the URL asks for teacher mode (``?teacher=1``; ``lock=1`` is read too)."""
    raw = [*params.get(TEACHER, []), *params.get("lock", [])]
    try:
        return bool(raw) and _flag(raw[-1] or "1")
    except ValueError:
        return False
