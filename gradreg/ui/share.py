"""Shareable views and teacher mode: a page's selections live in its URL (``gradreg.ui.urlstate`` says how values
are spelled), and ``?teacher=1`` locks the advanced controls for a class.
"""

from __future__ import annotations

import functools

import streamlit as st

from gradreg.ui import urlstate


def _url() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def share(*prefixes: str) -> None:
    """Keep this page's widget values under ``prefixes`` (whole keys, or prefixes ending in '.') in its URL.

    Call it before the widgets. When the URL's values differ from what this session last wrote (a first visit, a
    pasted or preset link, the back button), they go into ``st.session_state``, where the widgets pick them up; a
    value that does not decode is dropped and named in one warning at this spot. ``sync_url`` (at the end of every
    run, and of every ``fragment`` rerun) writes the values back: those from the link, and those changed since the
    page opened, so an untouched page keeps a clean URL and an unchanged view an unchanged URL. A run that ends in
    ``st.stop()`` cannot send anything more, so its URL stays as it was, and that URL is not applied again.
    """
    state, link = st.session_state, {k: v for k, v in _url().items() if urlstate.owned(k, prefixes)}
    state["url.prefixes"], state["url.slot"] = prefixes, st.empty()
    state.pop("url.check", None)  # left by a run that stopped before its widgets could take the link's values
    if link != state.get("url.written"):
        names = {i: n or i for i, n in _model_names(link).items()}
        values, state["url.errors"] = urlstate.read(link, models={**{n: i for i, n in names.items()},
                                                                  **{i: i for i in names}})
        state.update(values)
        state["url.link"], state["url.applied"], state["url.check"], state["url.written"] = link, values, values, link
        if state["url.errors"]:
            state["url.slot"].warning("Ignored from the link: " + "; ".join(state["url.errors"]),
                                      icon=":material/link_off:")


def sync_url(*, final: bool = False) -> None:
    """Write the shared values to the URL (see ``share``); other parameters go, ``?teacher=1`` stays. ``final``
    (``app.py``, after a page ran to its end): also warn about link values the page's widgets refused."""
    state, prefixes = st.session_state, st.session_state.get("url.prefixes")
    if prefixes is None:  # a page that shares nothing keeps its URL
        return
    link, applied, base = state.get("url.link", {}), state.get("url.applied", {}), state.setdefault("url.base", {})
    check, errors = (state.pop("url.check", {}), state.pop("url.errors", [])) if final else ({}, [])
    refused = [k for k, v in check.items() if k in state and state[k] != v]  # the page's widget did not take it
    values = {k: state[k] for k in state.keys() if urlstate.owned(k, prefixes) and urlstate.field(k)}
    names = {i: n for i, n in _model_names(refused or values).items() if n}
    for key in refused:
        errors.append(f"{key}={','.join(link[key])} is not offered here")
        del applied[key]
        base[key] = urlstate.encode(key, state[key], names=names)  # what the widget fell back to: its default
    if refused:
        state["url.slot"].warning("Ignored from the link: " + "; ".join(errors), icon=":material/link_off:")
    wanted = urlstate.view_params(values, link=link, applied=applied, base=base, names=names)
    url = wanted | ({} if advanced() else {urlstate.TEACHER: ["1"]})
    if url != _url():
        st.query_params.from_dict(url)
    state["url.written"] = wanted


def _model_names(needed) -> dict[str, str | None]:
    """Usable models' id → zoo name (None for unnamed ones), or {} when nothing ``needed`` a name: a page whose URL
    carries no value does not wait for the model listing (and torch, which reading checkpoints imports)."""
    if not needed:
        return {}
    from gradreg.ui.catalogue import usable_models

    return {m["id"]: m["name"] for m in usable_models()}


def fragment(func):
    """``st.fragment`` that also writes the shared values to the URL after each rerun (a fragment's rerun skips
    ``app.py``, where the full runs call ``sync_url``)."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        result = func(*args, **kwargs)
        sync_url()
        return result
    return st.fragment(run)


def advanced() -> bool:
    """False in teacher mode: ``?teacher=1`` in the URL (or the sidebar's lock), kept for the session. Pages hide
    their advanced controls then; the values still come from the link. A class view, not a security boundary."""
    if urlstate.teacher(_url()):
        st.session_state["url.locked"] = True
    return not st.session_state.get("url.locked", False)


def teaching_box() -> None:
    """The sidebar's note on sharing: the address bar is the view; a button locks it for a class."""
    if not advanced():
        st.sidebar.info("**Teacher mode: controls locked.** Copy the address bar to hand out this view; open it "
                        f"without `{urlstate.TEACHER}=1` to unlock.", icon=":material/lock:")
        return
    with st.sidebar.expander("Share or teach this view", icon=":material/share:"):
        st.caption("The address bar holds this page's settings: copy it to share the view, or open a lesson "
                   "preset from Home. Locking hides the advanced controls and adds `teacher=1` to the address.")
        st.button("Lock for a class", key="url.lock", icon=":material/lock:",
                  on_click=lambda: st.session_state.update({"url.locked": True}))
