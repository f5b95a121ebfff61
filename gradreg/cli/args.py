"""Argument types shared by the command-line modules: argparse turns their errors into exit code 2."""

from __future__ import annotations

import argparse
import math


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (λ, ε, learning rates…)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: images, steps, epochs…)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value
