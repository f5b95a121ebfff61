"""The warm start (``gradreg.ui.warm``, the lazy ``gradreg`` and ``gradreg.ui`` packages): a fresh server's first page
shows its title and navigation before torch is imported; after that first run a background thread loads what the
other pages need, and ``$GRADREG_WARM_START=0`` switches it off. Each check runs in a fresh process: nothing may be
imported or cached beforehand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, sys
os.chdir({root!r})
import streamlit as st
seen = {{}}
title, page_link = st.title, st.sidebar.page_link
def spy_title(*args, **kwargs):
    seen.setdefault("torch_at_title", "torch" in sys.modules)
    return title(*args, **kwargs)
def spy_link(*args, **kwargs):
    seen.setdefault("torch_at_navigation", "torch" in sys.modules)
    return page_link(*args, **kwargs)
st.title, st.sidebar.page_link = spy_title, spy_link
from streamlit.testing.v1 import AppTest
from gradreg.ui import warm
app = AppTest.from_file("app.py", default_timeout=300)
app.run()
seen["exceptions"] = [e.value for e in app.exception]
seen["warmed"] = warm.wait({wait})
seen["report"] = warm.report()
if seen["warmed"]:
    import torch
    from gradreg.training import checkpoints
    from gradreg.ui import catalogue, stored
    seen["threads"] = torch.get_num_threads()
    seen["store"] = stored.store() is not None
    loads = []
    checkpoints.load = lambda path, load=checkpoints.load: loads.append(path) or load(path)
    seen["models"] = catalogue.load_listed()
    seen["loaded_again"] = len(loads)  # 0: every listed model was in the shared cache already
print(json.dumps(seen))
"""


def _probe(env: dict, wait: float) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), wait=wait)], capture_output=True,
                         text=True, timeout=600, env=os.environ | {"PYTHONWARNINGS": "ignore"} | env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0 and lines, out.stderr[-2000:]
    return json.loads(lines[-1])


def test_the_first_page_answers_before_torch_and_the_warm_up_loads_the_rest(tmp_path):
    seen = _probe({"GRADREG_CHECKPOINT_DIR": str(tmp_path), "GRADREG_WARM_START": "1"}, wait=300)
    assert seen["exceptions"] == []
    assert seen["torch_at_navigation"] is False and seen["torch_at_title"] is False, seen
    assert seen["warmed"] and "error" not in seen["report"], seen["report"]
    assert {"import torch", "precomputed lessons", "models", "test sets", "datasets"} <= set(seen["report"])
    assert seen["threads"] == 1, "the app's one intra-op thread, set before torch was imported"
    assert seen["store"] is True and seen["models"] > 0 and seen["loaded_again"] == 0


def test_the_warm_up_can_be_switched_off(tmp_path):
    seen = _probe({"GRADREG_CHECKPOINT_DIR": str(tmp_path), "GRADREG_WARM_START": "0"}, wait=3)
    assert seen["exceptions"] == [] and seen["warmed"] is False and seen["report"] == {}
