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


@st.cache_resource(show_spinner=False)
def _ledger() -> dict:
    """Shared by every session of this process: seconds per unit measured per kind, and the chunks computed."""
    return {"costs": {}, "done": set()}


def cost(kind: str) -> float | None:
    """Seconds per unit last measured for ``kind`` in this process, or None."""
    return _ledger()["costs"].get(kind)


def estimate(chunks: list[Chunk]) -> tuple[float, list[str]]:
    """(seconds the chunks not yet computed should take, the kinds among them never measured)."""
    ledger = _ledger()
    pending = [c for c in chunks if c.key not in ledger["done"]]
    unknown = sorted({c.kind for c in pending if c.kind not in ledger["costs"]})
    return sum(c.units * ledger["costs"][c.kind] for c in pending if c.kind in ledger["costs"]), unknown


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


def _finished(chunks: list[Chunk]) -> list:
    done = _ledger()["done"]
    return [c.run() if c.key in done else None for c in chunks]  # cached: no work


def run_chunks(key: str, what: str, chunks: list[Chunk]) -> Outcome:
    """Run ``chunks`` in order with a progress line and a Cancel button, unless the request was cancelled (then
    show what finished and a Resume button) or is estimated over the wait cap (then refuse, naming both).

    Args:
        key: the widget namespace (``"curves"``); what: the request in words, for messages.
    Returns:
        The ``Outcome``; its values list has one entry per chunk, None for chunks not computed.
    """
    signature, ledger, total = _signature(chunks), _ledger(), len(chunks)
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
    if all(c.key in ledger["done"] for c in chunks):
        return Outcome([c.run() for c in chunks], "complete", done=total)
    return _run(key, what, chunks, signature, unknown)


def _run(key: str, what: str, chunks: list[Chunk], signature: str, unknown: list[str]) -> Outcome:
    ledger, total, start = _ledger(), len(chunks), time.perf_counter()
    seconds = estimate(chunks)[0]
    about = f" (about {duration(seconds)})" if not unknown else " (timing the first part)"
    values: list = []
    st.session_state[f"{key}.running"] = signature  # what a Cancel click cancels
    with st.status(f"Computing {what}{about}…", expanded=True) as status:
        bar, stop = st.progress(0.0, text="starting"), st.empty()
        stop.button("Cancel", key=f"{key}.cancel", on_click=_cancel, args=(key, signature), icon=":material/stop:")
        for i, chunk in enumerate(chunks):
            if chunk.key in ledger["done"]:
                values.append(chunk.run())
                continue
            bar.progress(i / total, text=f"{chunk.label}: {i + 1} of {total}")  # Cancel interrupts here
            if chunk.warm is not None:
                chunk.warm()
            began = time.perf_counter()
            values.append(chunk.run())
            ledger["costs"][chunk.kind] = (time.perf_counter() - began) / max(chunk.units, 1)
            ledger["done"].add(chunk.key)
            if chunk.kind in unknown:  # first timing of this kind: is the rest within the cap?
                unknown = [k for k in unknown if k != chunk.kind]
                rest = estimate(chunks[i + 1:])[0]
                if not unknown:
                    status.update(label=f"Computing {what} (about {duration(rest)} more)…")
                if not unknown and rest > limit("wait_seconds"):
                    stop.empty()
                    message = refusal(f"the rest of {what}", rest, chunks)
                    status.update(label=f"Stopped {what}: over this server's time limit", state="error")
                    st.error(message)
                    return Outcome(values + [None] * (total - i - 1), "refused", message, done=i + 1)
        spent = time.perf_counter() - start
        bar.progress(1.0, text=f"{total} of {total}")
        stop.empty()
        status.update(label=f"Computed {what} in {duration(spent)}", state="complete", expanded=False)
    return Outcome(values, "complete", seconds=spent, done=total)
