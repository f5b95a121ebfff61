"""Command line for the zoo: ``python -m gradreg zoo …`` (registered by ``gradreg.cli``)."""

from __future__ import annotations

import argparse
import time

from gradreg import checkpoints
from gradreg.cli_args import nonnegative_float, positive_int
from gradreg.zoo import LAMBDA_GRID, build_zoo, default_dir, zoo_configs


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` subcommand."""
    p = sub.add_parser("zoo", help="train (or load) the default model set, compute cards, write manifest.json")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--epochs", type=positive_int, default=2)
    p.add_argument("--n-train", type=int, default=30000, help="training images per model (0: all)")
    p.add_argument("--lams", type=nonnegative_float, nargs="+", default=list(LAMBDA_GRID), help="Grad Reg (y) λ_eff grid")
    p.add_argument("--only", nargs="+", default=None, help="train only these entries (names as listed by --dry-run)")
    p.add_argument("--n-eval", type=positive_int, default=256, help="test images for the cards (paper: first 256)")
    p.add_argument("--out", default=None, help="default: checkpoints/ for mnist, checkpoints/<dataset>/ otherwise")
    p.add_argument("--dry-run", action="store_true", help="list the entries and their ids, train nothing")


def _cmd_zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    try:
        configs = zoo_configs(args.dataset, model=args.model, epochs=args.epochs, n_train=args.n_train or None,
                              lams=tuple(args.lams))
    except ValueError as err:
        parser.error(str(err))
    if args.only:
        unknown = sorted(set(args.only) - set(configs))
        if unknown:
            parser.error(f"unknown zoo entries {unknown}; valid: {', '.join(configs)}")
        configs = {name: c for name, c in configs.items() if name in args.only}
    if args.dry_run:
        for name, config in configs.items():
            print(f"{name:16} {checkpoints.config_id(config)}")
        return 0
    out = args.out or str(default_dir(args.dataset))
    bar = tqdm(unit="batch", dynamic_ncols=True)
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
        elif event == "card":
            card = details["card"]
            curve = {c["eps"]: c for c in card["curves"]}
            bar.write(f"{details['name']:16} clean {card['clean']:.3f}  FGSM ε=.1 {curve[0.1]['fgsm']:.3f}  "
                      f"PGD ε=.1 {curve[0.1]['pgd']:.3f}  ({time.perf_counter() - started[details['name']]:.0f} s)")

    manifest = build_zoo(configs, out=out, n_eval=args.n_eval, on_event=on_event, on_batch=on_batch)
    bar.close()
    print(f"{len(manifest['models'])} models in {manifest['built_seconds']:.0f} s -> {out}/manifest.json")
    return 0


COMMANDS = {"zoo": _cmd_zoo}
