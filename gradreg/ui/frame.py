"""The page frame: the app's thread count, routing every page through ``app.py``, known failures shown as messages,
the server's caps refused with a message, and the sidebar's status line.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from gradreg.training.places import CheckpointError
from gradreg.ui.limits import check_limit, problems
from gradreg.ui.runs import training_job


def use_threads() -> None:
    """One intra-op thread per torch call (``$GRADREG_UI_THREADS``, default 1), for ``app.py`` to call once.

    Several sessions and a training thread share 2 cores: torch's default of one intra-op thread per core made a
    PGD 40–200× slower under load (spinning OpenMP workers); one thread each keeps every panel responsive.

    The frame does not import torch (the first answer would wait ~1.5 s for it): when torch is not loaded yet, its
    ``OMP_NUM_THREADS`` is set, which torch reads when it starts; ``warm.warm_start`` imports it after the first run."""
    threads = int(os.environ.get("GRADREG_UI_THREADS", "1"))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def enter_page(page=None) -> None:
    """Called by ``app.py`` right before it runs the chosen ``page`` (see ``routed``; ``share`` forgets the previous
    page's URL state when the page changed)."""
    st.session_state["app.routed"] = True
    st.session_state["url.prefixes"] = None  # set again by the page's ``share``
    if page is not None and st.session_state.get("url.page") != page.url_path:
        st.session_state["url.page"] = page.url_path
        for name in ("url.written", "url.base", "url.link", "url.applied"):
            st.session_state.pop(name, None)


def routed() -> None:
    """Make sure the page runs inside ``app.py``'s router. When a fresh server's first request is a deep link and a
    ``pages/`` folder exists, Streamlit's legacy multipage mode runs the page file on its own, without layout or
    navigation (streamlit/streamlit#10276): then ``enter_page`` did not run; switch the mode off and rerun, once
    per session (AppTest runs every script in that mode, and a second rerun would drop a button click)."""
    if st.session_state.pop("app.routed", False) or st.session_state.get("app.rerouted"):
        return
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for this mode

    st.session_state["app.rerouted"] = True
    PagesManager.uses_pages_directory = False
    st.rerun()


@contextmanager
def failures(what: str, *, stop: bool = False) -> Iterator[None]:
    """Show a known failure (unusable checkpoint, missing dataset, a method that does not apply) as ``st.error``
    with its message instead of a traceback; the rest of the page still renders, unless ``stop``."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, _known_failures()):
            raise
        st.error(f"{what} failed: {err}")
        if stop:
            st.stop()


def within_limits(**requested: int) -> None:
    """Refuse a page's request over this server's caps (``gradreg.ui.limits``: ``images=``, ``attack_steps=``,
    ``queries=``…) with an ``st.error`` naming the variable, and stop the page."""
    with failures("This request", stop=True):
        for name, value in requested.items():
            check_limit(name, int(value))


def sidebar_navigation(pages: list) -> None:
    """``app.py``'s pages (``st.Page``) as links at the top of the sidebar, the current one highlighted.

    Streamlit's own navigation is off (``client.showSidebarNavigation`` in ``.streamlit/config.toml``): while no
    script in a fresh server has called ``st.navigation``, Streamlit lists ``pages/`` by file name ("app", "attack
    lab", …), and the first visitor saw that list until ``app.py`` replaced it. The switch hides both lists, so the
    app draws its own."""
    for page in pages:
        st.sidebar.page_link(page)


def sidebar_status() -> None:
    """A running training's progress and misconfigured caps (``gradreg.ui.limits``: their defaults apply), on every
    page. No server paths: students see the sidebar; the Models & data page shows them (``model_dirs``)."""
    for problem in problems():
        st.sidebar.warning(f"Server limit ignored: {problem}")
    job = training_job()
    if job is not None and job["state"] == "running":
        from gradreg.training.jobs import progress  # loaded by then: a run was started

        st.sidebar.progress(progress(job), text=f"Training `{job['id']}`")


def _known_failures() -> tuple[type, ...]:
    """The failures ``failures`` shows as messages. The dataset errors' module imports torch, so it is read from
    ``sys.modules``: one of its errors cannot have been raised before it was imported."""
    data = sys.modules.get("gradreg.core.data")
    return (CheckpointError, ValueError) + ((data.DatasetUnavailable, data.CorruptDataset) if data else ())
