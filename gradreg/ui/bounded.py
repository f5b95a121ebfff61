"""Bounded waits: a heavy computation as a list of small cached chunks (one (model, ε, images) point, one model's
metrics…) that is estimated before it runs, refused when the estimate is over the server's wait cap
(``$GRADREG_MAX_WAIT_SECONDS``, ``gradreg.ui.limits``), shown with a progress line saying what it does, and
cancellable between chunks.

Cancel is a button: its click asks Streamlit for a rerun, and Streamlit stops the running script at its next
element call, which is the progress update before the next chunk; the rerun then shows what finished. A click in a
fragment only queues a fragment rerun and interrupts nothing, so ``run_chunks`` must be called outside fragments.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from gradreg.ui import stored
from gradreg.ui.limits import CAPS, limit


@dataclass(frozen=True)
class Chunk:
    """One piece of a computation: ``run`` is a cached call keyed by primitives; ``key`` is its identity (the call's
    arguments), ``kind`` its cost class and ``units`` its work in that class's units (images)."""

    label: str  # what it does, for the progress line, e.g. "PGD on grad_y_110, ε 0.2"
    run: Callable[[], object]
    key: tuple
    kind: str
    units: int = 1
    warm: Callable[[], object] | None = None  # untimed set-up (models, test images), so the timing is the work's


@dataclass
class Outcome:
    """What ran: a value per chunk (None where not computed), the state and the message shown."""

    values: list
    state: str  # "complete", "cancelled" or "refused"
    message: str = ""
    seconds: float = 0.0
    done: int = field(default=0)


PROBE_SECONDS = 1.0  # a kind's cost is trusted once this much of its work was timed: one chunk can mislead (an attack
# stops early on images it fools at once: the first ensemble chunk on a tiny model cost 1/100 of the later ones)


@st.cache_resource(show_spinner=False)
def _ledger() -> dict:
    """Shared by every session of this process: per kind, the seconds and units of work timed; the chunks done."""
    return {"timed": {}, "done": set()}


def cost(kind: str) -> float | None:
    """Seconds per unit measured for ``kind`` in this process (at least ``PROBE_SECONDS`` of it), or None."""
    seconds, units = _ledger()["timed"].get(kind, (0.0, 0))
    return seconds / units if seconds >= PROBE_SECONDS and units else None


def _record(kind: str, seconds: float, units: int) -> None:
    timed = _ledger()["timed"]
    before = timed.get(kind, (0.0, 0))
    timed[kind] = (before[0] + seconds, before[1] + max(units, 1))


def estimate(chunks: list[Chunk]) -> tuple[float, list[str]]:
    """(seconds the chunks not yet computed should take, the kinds among them not measured enough yet)."""
    pending = [c for c in chunks if not _done(c)]
    unknown = sorted({c.kind for c in pending if cost(c.kind) is None})
    return sum(c.units * cost(c.kind) for c in pending if cost(c.kind) is not None), unknown


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def refusal(what: str, seconds: float, chunks: list[Chunk]) -> str:
    """The message of a refused request: the estimate, what it rests on, the cap and its variable."""
    kinds = {c.kind for c in chunks}
    measured = "; ".join(f"{k} {cost(k):.3g} s per image" for k in sorted(kinds) if cost(k) is not None)
    cap = CAPS["wait_seconds"]
    return (f"Refused: {what} would take about {duration(seconds)} on this server (measured {measured}); the limit "
            f"is {duration(limit('wait_seconds'))} of computation per request (${cap.env}). Use fewer images, models "
            "or ε, or a cheaper attack.")


def _signature(chunks: list[Chunk]) -> str:
    return hashlib.sha1(repr([c.key for c in chunks]).encode()).hexdigest()[:16]


def _cancel(key: str, signature: str) -> None:
    st.session_state[f"{key}.cancelled"] = signature


def _resume(key: str) -> None:
    st.session_state.pop(f"{key}.cancelled", None)


def _done(chunk: Chunk) -> bool:
    """Computed already in this process, or read from the zoo's precomputed lessons: costs nothing now (and a stored
    chunk is never timed, which would teach the estimates a false cost)."""
    return chunk.key in _ledger()["done"] or stored.has(chunk.key)


def _finished(chunks: list[Chunk]) -> list:
    return [c.run() if _done(c) else None for c in chunks]  # cached or stored: no work


def run_chunks(key: str, what: str, chunks: list[Chunk]) -> Outcome:
    """Run ``chunks`` in order with a progress line and a Cancel button, unless the request was cancelled (then
    show what finished and a Resume button) or is estimated over the wait cap (then refuse, naming both).

    Args:
        key: the widget namespace (``"curves"``); what: the request in words, for messages.
    Returns:
        The ``Outcome``; its values list has one entry per chunk, None for chunks not computed.
    """
    signature, total = _signature(chunks), len(chunks)
    if st.session_state.get(f"{key}.cancelled") == signature:
        values = _finished(chunks)
        done = sum(v is not None for v in values)
        message = f"Cancelled: {done} of {total} parts of {what} had finished. Resume computes the rest."
        st.warning(message, icon=":material/cancel:")
        st.button("Resume", key=f"{key}.resume", on_click=_resume, args=(key,), icon=":material/play_arrow:")
        return Outcome(values, "cancelled", message, done=done)
    seconds, unknown = estimate(chunks)
    if seconds > limit("wait_seconds"):
        message = refusal(what, seconds, chunks)
        st.error(message)
        return Outcome(_finished(chunks), "refused", message)
    if all(_done(c) for c in chunks):
        return Outcome([c.run() for c in chunks], "complete", done=total)
    return _run(key, what, chunks, signature, unknown)


def _run(key: str, what: str, chunks: list[Chunk], signature: str, unknown: list[str]) -> Outcome:
    """The run itself, in a bordered box (heading, progress bar, Cancel) that becomes a closed ``st.status`` when it
    ends. Not an open ``st.status`` while running: the browser keeps an expander's open/closed state for the element
    drawn next in its place, so a run after a closed status would hide its progress and its Cancel button."""
    ledger, total, start = _ledger(), len(chunks), time.perf_counter()
    seconds = estimate(chunks)[0]
    values: list = []
    st.session_state[f"{key}.running"] = signature  # what a Cancel click cancels
    slot = st.empty()
    with slot.container(border=True):
        heading = st.empty()
        heading.markdown(f"**Computing {what}**" + (f" (about {duration(seconds)})…" if not unknown
                                                     else " (timing the first part)…"))
        bar = st.progress(0.0, text="starting")
        st.button("Cancel", key=f"{key}.cancel", on_click=_cancel, args=(key, signature), icon=":material/stop:")
    for i, chunk in enumerate(chunks):
        if _done(chunk):
            values.append(chunk.run())
            continue
        bar.progress(i / total, text=f"{chunk.label}: {i + 1} of {total}")  # Cancel interrupts here
        if chunk.warm is not None:
            chunk.warm()
        began = time.perf_counter()
        values.append(chunk.run())
        _record(chunk.kind, time.perf_counter() - began, chunk.units)
        ledger["done"].add(chunk.key)
        if chunk.kind in unknown and cost(chunk.kind) is not None:  # measured enough now: is the rest within the cap?
            unknown = [k for k in unknown if k != chunk.kind]
            rest = estimate(chunks[i + 1:])[0]  # a lower bound while other kinds are still being timed
            if rest > limit("wait_seconds"):
                message = refusal(f"the rest of {what}", rest, chunks)
                _closed(slot, f"Stopped {what}: over this server's time limit", "error", i + 1, total)
                st.error(message)
                return Outcome(values + [None] * (total - i - 1), "refused", message, done=i + 1)
        rest, untimed = estimate(chunks[i + 1:])
        if rest:
            heading.markdown(f"**Computing {what}** (about {duration(rest)} more"
                             + (", plus parts not timed yet" if untimed else "") + ")…")
    spent = time.perf_counter() - start
    _closed(slot, f"Computed {what} in {duration(spent)}", "complete", total, total)
    return Outcome(values, "complete", seconds=spent, done=total)


def _closed(slot, label: str, state: str, done: int, total: int) -> None:
    with slot.status(label, state=state, expanded=False):
        st.progress(done / total, text=f"{done} of {total}")
