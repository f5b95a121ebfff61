"""Rows of the benchmark and the markdown table they print as."""

from __future__ import annotations


def row(section: str, what: str, peer: str | None, ratio: float | None, *, target: str, met: bool | None,
        seconds: float | None = None, peer_seconds: float | None = None, unit: str = "×", note: str = "") -> dict:
    """One figure: ``ratio`` against ``peer`` measured in the same run (or a value in ``unit`` without a peer)."""
    return {"section": section, "what": what, "peer": peer, "ratio": ratio, "unit": unit, "target": target,
            "met": met, "seconds": seconds, "peer_seconds": peer_seconds, "note": note}


def _figure(r: dict) -> str:
    if r["ratio"] is None:
        return "—"
    return f"{r['ratio']:.2f}×" if r["unit"] == "×" else f"{r['ratio']:.3g} {r['unit']}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def markdown(rows: list[dict], context: dict) -> str:
    """The table (one line per figure) under a line saying where and how it was measured."""
    device = context["device"]
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items() if v)
    lines = [f"Measured {context['when']} on {device['name']} ({device['type']}, {context['machine']['cpu_count']} "
             f"cores, {context['torch_threads']} torch threads; {versions}).", "",
             "| section | figure | compared with | result | target | met | ours | peer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['section']} | {r['what']}{note} | {r['peer'] or '—'} | {_figure(r)} | {r['target']} | "
                     f"{met} | {_seconds(r['seconds'])} | {_seconds(r['peer_seconds'])} |")
    return "\n".join(lines)
