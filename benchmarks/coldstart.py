"""Cold start of the real dashboard: ``streamlit run app.py`` in a fresh process until the first page answers,
against a peer that only imports torch and streamlit (the floor any Streamlit + torch app pays).

"Answers" means: ``/_stcore/health`` is ok, the page HTML is served, and one script run of the default page has
finished for a session connected the way a browser connects (a websocket on ``/_stcore/stream`` asking for a run).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.report import row
from benchmarks.timing import median

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            response.read()
            return response.status
    except OSError:
        return 0


def _first_script_run(port: int, timeout: float) -> None:
    """Connect as a browser does and wait until the server reports the first script run finished."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=timeout,
                 max_size=None) as ws:
        message = BackMsg()
        message.rerun_script.query_string = ""
        message.rerun_script.page_script_hash = ""
        ws.send(message.SerializeToString())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            forward = ForwardMsg()
            forward.ParseFromString(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if forward.WhichOneof("type") == "script_finished":
                return
    raise TimeoutError("no script run finished")


def cold_start_seconds(*, timeout: float = 120.0) -> dict:
    """Seconds from spawning ``streamlit run app.py`` to health ok, and to the first finished script run."""
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ.copy())
    try:
        while _get(f"http://127.0.0.1:{port}/_stcore/health") != 200:
            if process.poll() is not None or time.perf_counter() - start > timeout:
                raise RuntimeError(f"streamlit did not become healthy (exit code {process.poll()})")
            time.sleep(0.02)
        healthy = time.perf_counter() - start
        if _get(f"http://127.0.0.1:{port}/") != 200:
            raise RuntimeError("the page HTML was not served")
        _first_script_run(port, timeout)
        return {"health": healthy, "first_page": time.perf_counter() - start}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peer_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, streamlit"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def measure(*, repeats: int) -> tuple[list, dict]:
    """Interleaved: a cold start, then the import-only peer, ``repeats`` times; medians."""
    starts, peers = [], []
    for _ in range(repeats):
        starts.append(cold_start_seconds())
        peers.append(peer_seconds())
    first = median([s["first_page"] for s in starts])
    peer = median(peers)
    health = median([s["health"] for s in starts])
    rows = [row("cold start", f"`streamlit run app.py` until the first page answers (median of {repeats})",
                "`import torch, streamlit` in a fresh process", first, unit="s", target=f"≤ {TARGET_S:g} s",
                met=first <= TARGET_S, seconds=first, peer_seconds=peer,
                note=f"health after {health:.2f} s; {first / peer:.2f}× the import-only peer")]
    return rows, {"runs": starts, "peer": peers}
