"""Fair use of a shared server: caps on what one request of the dashboard may ask for.

Each cap is read from an environment variable when it is needed (so a server can be tuned without code changes) and
validated: a value that is not a positive integer is replaced by the default and reported (``problems``) with the
variable's name. The defaults keep every interaction responsive on a 2-core machine shared by a class (see README,
"Reliability and security"). The library and the CLI are not capped: these limits apply where the app calls into
the library.
Uploaded pictures have their own limits in ``gradreg.lessons.digit`` (``MAX_BYTES``, ``MAX_PIXELS``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Cap:
    """One limit: its environment variable, default, and what it counts (for messages)."""

    env: str
    default: int
    what: str
    low: int = 1  # the smallest value a server may set


CAPS: dict[str, Cap] = {
    "images": Cap("GRADREG_MAX_IMAGES", 1000, "images per request"),
    "attack_steps": Cap("GRADREG_MAX_ATTACK_STEPS", 200, "attack steps (per restart)"),
    "restarts": Cap("GRADREG_MAX_RESTARTS", 10, "attack restarts"),
    "queries": Cap("GRADREG_MAX_QUERIES", 5000, "model queries of a gradient-free attack"),
    "epochs": Cap("GRADREG_MAX_EPOCHS", 20, "training epochs in the app"),
    "trainings": Cap("GRADREG_MAX_TRAININGS", 1, "concurrent trainings per process"),
    # A request's estimated computing time (``gradreg.ui.bounded``): longer ones are refused before they start.
    "wait_seconds": Cap("GRADREG_MAX_WAIT_SECONDS", 120, "seconds of computation per request"),
}
# Which attack knob each cap bounds (``ATTACKS[m].params`` names).
KNOB_CAPS = {"steps": "attack_steps", "restarts": "restarts", "queries": "queries"}


class LimitError(ValueError):
    """A request beyond a server's cap; the message names the cap, its value and the variable that sets it."""


def _read(name: str) -> tuple[int, str]:
    """(value, problem): the variable's value, or the default and why the variable's text was not used."""
    if name not in CAPS:
        raise ValueError(f"unknown cap {name!r}; valid: {', '.join(CAPS)}")
    cap = CAPS[name]
    text = os.environ.get(cap.env, "").strip()
    if not text:
        return cap.default, ""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < cap.low:
        return cap.default, f"${cap.env} must be an integer >= {cap.low}, got {text!r}; using {cap.default}"
    return value, ""


def limit(name: str) -> int:
    """The current value of cap ``name`` (a key of ``CAPS``) from its environment variable, else its default.

    A value that is not an integer >= 1 never takes the server down: the default applies and ``problems`` says so.
    """
    return _read(name)[0]


def problems() -> list[str]:
    """One message per cap variable whose value was not usable (the app shows them)."""
    return [problem for name in CAPS if (problem := _read(name)[1])]


def check_limit(name: str, value: int) -> int:
    """``value`` if it is within cap ``name``; otherwise a ``LimitError`` saying what the server allows."""
    high = limit(name)
    if value > high:
        cap = CAPS[name]
        raise LimitError(f"{value} {cap.what} is over this server's limit of {high} (set by ${cap.env})")
    return value


def check_knob_caps(params: dict) -> dict:
    """``params`` (attack knobs) if every capped knob (steps, restarts, queries) is within its cap (the knobs' own
    checks are the attacks'; ``validation.check_knobs`` is another thing: it checks a function's keywords)."""
    for knob, name in KNOB_CAPS.items():
        value = params.get(knob)
        if isinstance(value, int) and not isinstance(value, bool):
            check_limit(name, value)
    return params
