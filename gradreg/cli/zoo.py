"""Command line for the zoo: ``python -m gradreg zoo …`` (registered by ``gradreg.cli.main``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace

from gradreg.cli.args import nonnegative_float, positive_int
from gradreg.core.config import RECIPES
from gradreg.paper.zoo import LAMBDA_GRID, PRESETS, default_dir, replica_configs, zoo_configs
from gradreg.paper.zoo_build import build_zoo
from gradreg.training import checkpoints


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` subcommand."""
    p = sub.add_parser("zoo", help="train (or load) the default model set, compute cards, write manifest.json")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="network and schedule: " + "; ".join(f"{k}: {v.about}" for k, v in PRESETS.items()))
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="authors", help="init, BatchNorm scale and Adam ε")
    p.add_argument("--model", default=None, help="default: the preset's")
    p.add_argument("--epochs", type=positive_int, default=None, help="default: the preset's")
    p.add_argument("--n-train", type=int, default=None, help="training images per model (0: all; default: the preset's)")
    p.add_argument("--lams", type=nonnegative_float, nargs="+", default=list(LAMBDA_GRID), help="Grad Reg (y) λ_eff grid")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="seeds of Normal and of Grad Reg (y) at the authors' λ (default: the preset's)")
    p.add_argument("--only", nargs="+", default=None, help="train only these entries (names as listed by --dry-run)")
    p.add_argument("--n-eval", type=positive_int, default=256, help="test images for the cards (paper: first 256)")
    p.add_argument("--workers", type=positive_int, default=1, help="train this many models at once, on an embedded Ray "
                   "(a sweep: the CPUs shared out; on CUDA each trains on a 1/N share of the GPU, several small "
                   "trainings share it well)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--train-only", action="store_true", help="train, then stop: no cards, no manifest (run the same "
                   "command again without it, e.g. on another machine, to finish the zoo)")
    p.add_argument("--out", default=None, help="default: checkpoints/ for mnist, checkpoints/<dataset>/ otherwise")
    p.add_argument("--dry-run", action="store_true", help="list the entries and their ids, train nothing")
    p.add_argument("--no-lessons", action="store_true", help="do not precompute the dashboard's lessons afterwards "
                   "(python -m gradreg lessons does it later)")
    q = sub.add_parser("lessons", help="precompute what the dashboard's pages show for a zoo at their default "
                       "settings, stored beside it (<zoo>/lessons/views.safetensors)")
    q.add_argument("--zoo", default=None, help="the zoo's folder (default: $GRADREG_ZOO_DIR or checkpoints/)")


def _configs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[dict, dict]:
    schedule = {k: v for k, v in (("model", args.model), ("epochs", args.epochs)) if v is not None}
    if args.n_train is not None:
        schedule["n_train"] = args.n_train or None
    try:
        configs = zoo_configs(args.dataset, preset=args.preset, lams=tuple(args.lams), recipe=args.recipe, **schedule)
        if args.device is not None:  # not part of a model's identity: the same ids on any device
            configs = {name: replace(c, device=args.device) for name, c in configs.items()}
    except ValueError as err:
        parser.error(str(err))
    replicas = replica_configs(configs, seeds=args.seeds or PRESETS[args.preset].seeds)
    if args.only:
        unknown = sorted(set(args.only) - set(configs) - set(replicas))
        if unknown:
            parser.error(f"unknown zoo entries {unknown}; valid: {', '.join([*configs, *replicas])}")
        configs = {name: c for name, c in configs.items() if name in args.only}
        replicas = {name: c for name, c in replicas.items() if name in args.only}
    return configs, replicas


def _cmd_zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    configs, replicas = _configs(args, parser)
    if args.dry_run:
        for name, config in {**configs, **replicas}.items():
            print(f"{name:20} {checkpoints.config_id(config)}")
        return 0
    out = args.out or str(default_dir(args.dataset))
    bar = tqdm(unit="batch", dynamic_ncols=True, disable=args.workers > 1)
    started = {}

    def on_batch(batch: int, batches: int, running: dict) -> None:
        bar.total, bar.n = batches, batch
        bar.set_postfix(loss=f"{running['loss']:.3f}", acc=f"{running['accuracy']:.3f}", refresh=False)
        bar.refresh()

    def on_event(event: str, details: dict) -> None:
        if event == "train":
            started[details["name"]] = time.perf_counter()
            bar.set_description(details["name"])
            bar.reset()
        elif event == "trained":
            bar.write(f"{details['name']:20} trained in {details['seconds']:.0f} s on {details['trained_on']} "
                      f"({time.perf_counter() - started[details['name']]:.0f} s here)")
        elif event == "card":
            card = details["card"]
            curve = {c["eps"]: c for c in card["curves"]}
            bar.write(f"{details['name']:20} clean {card['clean']:.3f}  FGSM ε=.1 {curve[0.1]['fgsm']:.3f}  "
                      f"PGD ε=.1 {curve[0.1]['pgd']:.3f}")

    first = next(iter({**configs, **replicas}.values()))
    about = {"preset": args.preset, "preset_about": PRESETS[args.preset].about, "recipe": args.recipe,
             "schedule": {k: getattr(first, k) for k in ("model", "epochs", "n_train", "batch_size", "lr", "lr_schedule")},
             "lams": args.lams, "seeds": args.seeds or PRESETS[args.preset].seeds, "only": args.only}
    kwargs = {"on_batch": on_batch} if args.workers == 1 else {}
    manifest = build_zoo(configs, out=out, n_eval=args.n_eval, replicas=replicas, workers=args.workers,
                         train_only=args.train_only, about=about, on_event=on_event, **kwargs)
    bar.close()
    if manifest is None:
        print(f"{len(configs) + len(replicas)} models trained -> {out} (run again without --train-only for the cards)")
    else:
        print(f"{len(manifest['models'])} models and {len(manifest['replicas'])} replicas in "
              f"{manifest['built_seconds']:.0f} s -> {out}/manifest.json")
        if not args.no_lessons:
            return _precompute(out)
    return 0


def _precompute(zoo: str | None) -> int:
    """Record the dashboard's default views of ``zoo`` (``gradreg.ui.precompute``) in a child process: the command
    line does not import Streamlit, whose AppTest runs the pages."""
    command = [sys.executable, "-m", "gradreg.ui.precompute"] + (["--zoo", zoo] if zoo else [])
    return subprocess.run(command, check=False).returncode


def _cmd_lessons(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return _precompute(args.zoo)


COMMANDS = {"zoo": _cmd_zoo, "lessons": _cmd_lessons}
