"""Command line for the reproduction: ``python -m gradreg reproduce …`` (registered by ``gradreg.cli``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradreg.cli_args import nonnegative_float


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand."""
    p = sub.add_parser("reproduce", help="run the paper's experiments on the zoo; write REPORT.md, PNGs, results.json")
    p.add_argument("--dataset", default="mnist", help="the zoo's dataset (checked against its manifest)")
    p.add_argument("--quick", action="store_true", help="fewer images and ε, weaker PGD/Square: a few minutes")
    p.add_argument("--zoo", default=None, help="zoo directory holding manifest.json (default: the shipped zoo of "
                   "--dataset: checkpoints/ for mnist, checkpoints/<dataset>/ otherwise)")
    p.add_argument("--out", default="reports", help="reports root; the report goes to OUT/<dataset>/")
    p.add_argument("--lam", type=nonnegative_float, default=10.0, help="λ_eff of the compared Grad Reg (y) model")


def _cmd_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from gradreg.report import write_report
    from gradreg.report_figures import write_figures
    from gradreg.reproduce import PROFILES, STEPS, run
    from gradreg.zoo import default_dir, read_manifest

    args.zoo = args.zoo or str(default_dir(args.dataset))
    try:
        manifest = read_manifest(args.zoo)
    except ValueError as err:
        parser.error(str(err))
    if manifest is None:
        parser.error(f"no manifest.json in {args.zoo}: build the zoo first (python -m gradreg zoo)")
    if manifest["dataset"] != args.dataset:
        parser.error(f"the zoo in {args.zoo} is for {manifest['dataset']!r}, not {args.dataset!r}")
    profile = "quick" if args.quick else "full"
    started = time.perf_counter()
    bar = tqdm(total=len(STEPS) + 1, unit="step", dynamic_ncols=True)

    def on_step(name: str) -> None:
        bar.set_description(name)
        bar.update(1)

    rep = run(args.zoo, settings=PROFILES[profile], lam=args.lam, on_step=on_step)
    out = Path(args.out) / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    bar.set_description("figures")
    status = write_figures(rep, out)
    bar.update(1)
    bar.close()
    path = write_report(rep, out, status=status, profile=profile, seconds=time.perf_counter() - started)
    missing = [name for name, s in status.items() if s.startswith("missing")]
    print(f"{profile} reproduction in {time.perf_counter() - started:.0f} s -> {path}"
          + (f" ({len(missing)} figure(s) missing: {', '.join(missing)})" if missing else ""))
    return 0


COMMANDS = {"reproduce": _cmd_reproduce}
