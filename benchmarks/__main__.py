"""How fast gradreg is, as ratios against peers measured in the same run: prints a markdown table, writes JSON.

    python -m benchmarks [--quick] [--device cpu|cuda|auto] [--out benchmarks/results/<machine>.json]
                         [--only training,attacks,saliency,ui,coldstart,firstvisit,zoo,sweeps] [--threads N]

Sections whose dependencies are missing (Captum, Streamlit) are skipped with a note, so the command runs on a GPU
machine that has only torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
import warnings
from pathlib import Path

import torch

from benchmarks import attacks, report, saliency, training
from benchmarks.report import row
from benchmarks.timing import context, resolve_device

SECTIONS = ("training", "attacks", "saliency", "ui", "coldstart", "firstvisit", "zoo", "sweeps")
ZOO_TARGET_S = 15 * 60


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches and few repeats (a smoke run)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--out", type=Path, help="JSON path (default: benchmarks/results/<machine>.json)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, help="torch threads (default: as torch sets them; recorded)")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return args


def _model_and_images(device: torch.device, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    """The zoo's plain model (frozen, eval), or a fresh small_cnn when no zoo is there, and ``n`` test images."""
    from gradreg.core.data import load_dataset
    from gradreg.core.models import build_model
    from gradreg.paper.zoo import read_manifest
    from gradreg.training.checkpoints import load, zoo_dir

    manifest = read_manifest(zoo_dir())
    plain = next((m for m in (manifest or {}).get("models", []) if m["name"] == "plain"), None)
    if plain is not None:
        model, name = load(zoo_dir() / plain["file"]).build(frozen=True, device=device), f"zoo {plain['id']}"
        dataset = manifest["dataset"]
    else:
        torch.manual_seed(0)
        model = build_model("small_cnn").to(device).eval().requires_grad_(False)
        name, dataset = "untrained small_cnn", "mnist"
    x, y = load_dataset(dataset, "test", n=n).tensors
    return model, x.to(device), y.to(device), name


def _zoo_rows() -> tuple[list, dict]:
    from gradreg.paper.zoo import read_manifest
    from gradreg.training.checkpoints import zoo_dir

    manifest = read_manifest(zoo_dir()) or {}
    entries = manifest.get("models", []) + manifest.get("replicas", [])
    # A build resumed after an interruption records only its last run in built_seconds: the sum of every model's
    # own training time is the zoo's cost (models trained side by side each count in full).
    seconds = sum(e["train_seconds"] for e in entries) if entries else None
    minutes = None if seconds is None else seconds / 60
    return [row("zoo", f"training the default zoo ({len(entries)} models, sum of their train_seconds)", None, minutes,
                unit="min", target="≤ 15 min on 2 cores", met=None if minutes is None else minutes <= 15,
                seconds=seconds, note="recorded in manifest.json by `python -m gradreg zoo`, not rerun")], {
        "train_seconds": seconds, "built_seconds": manifest.get("built_seconds"), "zoo": str(zoo_dir())}


def _default_out(device: torch.device, quick: bool) -> Path:
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{platform.node() or 'machine'}-{device.type}")
    return Path(__file__).resolve().parent / "results" / f"{machine}{'-quick' if quick else ''}.json"


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    info = context(device)
    rows, raw, skipped = [], {}, {}
    have = {name: importlib.util.find_spec(name) is not None for name in ("captum", "streamlit")}
    q = args.quick
    # The dashboard first, before the heavy sections have grown the process and its allocator.
    for section, needs in (("ui", "streamlit"), ("coldstart", "streamlit"), ("firstvisit", "streamlit")):
        if section not in args.only:
            continue
        if not have[needs]:
            skipped[section] = f"{needs} is not installed"
            continue
        if section == "ui":
            from benchmarks import ui_timings

            rows_, raw["ui"] = ui_timings.measure(moves=2 if q else 5)
        elif section == "firstvisit":
            from benchmarks import first_visit

            rows_, raw["firstvisit"] = first_visit.measure(only=("home",) if q else None, browser=not q)
        else:
            from benchmarks import coldstart

            rows_, raw["coldstart"] = coldstart.measure(repeats=1 if q else 3)
        rows += rows_
    torch.set_num_threads(threads)  # the app's runs (app.py calls ui.use_threads) set its own thread count
    if "training" in args.only:
        models = ("small_cnn",) if q else ("small_cnn", "paper_cnn")
        rows_, raw["training"] = training.measure(device=device, models=models, batch_size=16 if q else 256,
                                                  repeats=2 if q else 5)
        rows += rows_
    if {"attacks", "saliency"} & set(args.only):
        model, x, y, model_name = _model_and_images(device, 16 if q else 256)
        info["attack_saliency_model"] = model_name
    if "attacks" in args.only:
        rows_, raw["attacks"] = attacks.measure(model, x, y, device=device, pgd_steps=5 if q else 40,
                                                apgd_steps=5 if q else 100, repeats=2 if q else 5)
        rows += rows_
    if "saliency" in args.only:
        if have["captum"]:
            rows_, raw["saliency"] = saliency.measure(model, x, device=device, batches=(1, 8) if q else (1, 64),
                                                      repeats=2 if q else 5)
            rows += rows_
        else:
            skipped["saliency"] = "captum is not installed"
    if "zoo" in args.only:
        rows_, raw["zoo"] = _zoo_rows()
        rows += rows_
    if "sweeps" in args.only:
        if importlib.util.find_spec("ray") is None:
            skipped["sweeps"] = "ray is not installed"
        else:
            from benchmarks import sweeps

            rows_, raw["sweeps"] = sweeps.measure(seeds=1 if q else 2)
            rows += rows_
    info["torch_threads"] = threads
    return {**info, "quick": q, "command": " ".join(["python -m benchmarks", *sys.argv[1:]]), "rows": rows,
            "skipped": skipped, "raw": raw}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.filterwarnings("ignore", module=r"captum\.")  # Captum's notes on requires_grad and hooks
    result = run(args)
    table = report.markdown(result["rows"], result)
    for section, why in result["skipped"].items():
        table += f"\n\nSkipped {section}: {why}."
    out = args.out or _default_out(resolve_device(args.device), args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "table": table}, indent=1, default=str) + "\n")
    print(table)
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
