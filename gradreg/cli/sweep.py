"""Command line for sweeps: ``python -m gradreg sweep SWEEP.toml …`` and ``python -m gradreg sweep --summary DIR``."""

from __future__ import annotations

import argparse
import time

from gradreg.cli.args import nonnegative_float, positive_int


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    p = sub.add_parser("sweep", help="train and evaluate a grid of models (a TOML sweep file) on Ray Tune or serially",
                       description="Run a sweep file (see sweeps/smoke.toml and sweeps/paper.toml), or summarize a "
                                   "results folder with --summary. A re-run trains nothing that already finished.")
    p.add_argument("file", nargs="?", help="the sweep file (TOML)")
    p.add_argument("--summary", metavar="DIR", default=None,
                   help="print mean ± sd over seeds of the results in DIR, run nothing")
    p.add_argument("--backend", choices=("ray", "serial"), default="ray",
                   help="ray: Ray Tune (default); serial: one trial after another in this process, no Ray")
    p.add_argument("--address", default=None, help="a Ray cluster: auto, or ray://HOST:PORT (default: $RAY_ADDRESS, "
                   "else an embedded single-node Ray on this machine)")
    p.add_argument("--cpus-per-trial", type=positive_int, default=None,
                   help="CPUs per trial, and torch's threads in it (default: 1 on Ray, all of them serially)")
    p.add_argument("--gpus-per-trial", type=nonnegative_float, default=0.0,
                   help="GPU share per trial; 0.25 packs four trials on one GPU (default: 0, CPU)")
    p.add_argument("--storage", default=None, help="the sweep's folder: checkpoints, cards, results.jsonl (default: "
                   "$GRADREG_SWEEP_DIR/<name>, else ~/.cache/gradreg/sweeps/<name>; on a cluster, a shared path)")
    p.add_argument("--dry-run", action="store_true", help="list the trials, their ids and stages; run nothing")


def _cmd_sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from gradreg.sweeps.results import format_summary, read_results, summarize

    if args.summary is not None:
        if args.file:
            parser.error("give a sweep file to run, or --summary DIR, not both")
        rows = read_results(args.summary)
        failed = [row for row in rows if row["status"] == "failed"]
        print(format_summary(summarize(rows)))
        for row in failed:
            print(f"failed: {row['trial']}: {row.get('error', '')}")
        return 0
    if not args.file:
        parser.error("give a sweep file (e.g. sweeps/smoke.toml) or --summary DIR")
    from gradreg.sweeps.spec import load_sweep, stages

    if args.backend == "serial" and args.address:
        parser.error("--address names a Ray cluster: use it with --backend ray")
    sweep = load_sweep(args.file)
    if args.dry_run:
        for number, wave in enumerate(stages(sweep.trials)):
            for trial in wave:
                print(f"stage {number + 1}  {trial.name:28} {trial.id}")
        print(f"{len(sweep.trials)} trials")
        return 0
    return _run(args, sweep)


def _run(args: argparse.Namespace, sweep) -> int:
    from tqdm import tqdm

    from gradreg.sweeps.results import format_summary, summarize
    from gradreg.sweeps.runner import default_storage, run_sweep

    storage = args.storage or str(default_storage(sweep.name))
    bar = tqdm(total=len(sweep.trials), unit="trial", dynamic_ncols=True, desc=sweep.name)
    running, counts, started = set(), {"done": 0, "failed": 0}, time.perf_counter()

    def on_event(event: str, details: dict) -> None:
        if event == "start":
            running.add(details["trial"])
        else:
            running.discard(details["trial"])
            counts[event] += 1
            bar.update(1)
            if event == "failed":
                bar.write(f"failed: {details['trial']}: {details.get('error', '')}")
            else:
                bar.write(f"done:   {details['trial']:28} {'trained' if details['trained'] else 'loaded '} "
                          f"{details['seconds']:.0f} s  clean {_pct(details.get('clean'))}  "
                          f"test {_pct(details.get('test_accuracy'))}")
        bar.set_postfix(finished=counts["done"], running=len(running), failed=counts["failed"], refresh=True)

    rows = run_sweep(sweep.trials, storage, backend=args.backend, name=sweep.name, address=args.address,
                     cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, on_event=on_event)
    bar.close()
    print(format_summary(summarize(rows)))
    print(f"{counts['done']} trials done, {counts['failed']} failed in {time.perf_counter() - started:.0f} s "
          f"-> {storage}/results.jsonl")
    return 1 if counts["failed"] else 0


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


COMMANDS = {"sweep": _cmd_sweep}
