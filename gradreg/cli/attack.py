"""Command line for attacks: ``python -m gradreg {attack,transfer,masking} …`` (registered by ``gradreg.cli.main``).

Tables go to stdout, progress bars to stderr; ``--csv`` / ``--json`` write the records. Bad arguments exit with
code 2 and list the valid choices.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from gradreg.attacks.apgd import LOSSES
from gradreg.attacks import ATTACKS, NORMS, TARGETS
from gradreg.cli.args import nonnegative_float, positive_int

KNOBS = ("steps", "step_size", "norm", "restarts", "random_start", "queries", "gamma", "p_init", "loss", "targets")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=positive_int, default=256, help="the first N test images (paper: 256)")
    p.add_argument("--dataset", default=None, help="default: the (first) checkpoint's dataset")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--csv", default=None, help="write the records to this CSV file")
    p.add_argument("--json", default=None, help="write the records to this JSON file")


def _add_knobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=sorted(ATTACKS), required=True)
    p.add_argument("--eps", type=nonnegative_float, nargs="+", required=True,
                   help="the attack's size: radii in pixel units of [0, 1] images (iterated_tgsm: its step_size; "
                        "jsma: its theta)")
    p.add_argument("--target", choices=TARGETS, default=None, help="targeted attacks only (default: next)")
    p.add_argument("--steps", type=positive_int, default=None)
    p.add_argument("--step-size", type=nonnegative_float, default=None)
    p.add_argument("--norm", choices=NORMS, default=None)
    p.add_argument("--restarts", type=positive_int, default=None)
    p.add_argument("--no-random-start", dest="random_start", action="store_false", default=None)
    p.add_argument("--queries", type=positive_int, default=None, help="square: model evaluations per image")
    p.add_argument("--gamma", type=nonnegative_float, default=None, help="jsma: max fraction of pixels changed")
    p.add_argument("--p-init", type=nonnegative_float, default=None, help="square: initial square size (fraction of pixels)")
    p.add_argument("--loss", choices=LOSSES, default=None, help="apgd: the loss it ascends")
    p.add_argument("--targets", type=positive_int, default=None, help="apgd_t, ensemble: top non-true classes tried")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``attack``, ``transfer`` and ``masking`` subcommands."""
    p = sub.add_parser("attack", help="white-box accuracy of one checkpoint under an attack, per ε")
    p.add_argument("--checkpoint", required=True, help="checkpoint id (see `list`) or path")
    _add_knobs(p)
    _add_common(p)
    p = sub.add_parser("transfer", help="transfer matrix: every checkpoint scored on every checkpoint's examples")
    p.add_argument("--checkpoints", nargs="+", required=True, help="two or more checkpoint ids or paths")
    _add_knobs(p)
    _add_common(p)
    p = sub.add_parser("masking", help="gradient-masking checks of one checkpoint, each with a verdict")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--source", default=None, help="another checkpoint for the white-box vs transfer check")
    p.add_argument("--eps", type=nonnegative_float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--large-eps", type=nonnegative_float, default=0.5)
    p.add_argument("--steps", type=positive_int, default=40, help="PGD steps")
    p.add_argument("--queries", type=positive_int, default=1000, help="Square queries per image")
    p.add_argument("--tolerance", type=nonnegative_float, default=0.02, help="accuracy slack of the comparisons")
    _add_common(p)


def _params(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    spec = ATTACKS[args.method]
    params = {k: getattr(args, k) for k in KNOBS if getattr(args, k) is not None}
    wrong = [k for k in params if k not in spec.params or k == spec.size]  # --eps sets the size
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        valid = ", ".join("--" + k.replace("_", "-") for k in spec.params if k in KNOBS and k != spec.size) or "none"
        parser.error(f"{args.method} does not take {flags}; its options: {valid}")
    if args.target is not None and not spec.targeted:
        parser.error(f"{args.method} is untargeted; --target needs one of "
                     f"{', '.join(sorted(k for k, s in ATTACKS.items() if s.targeted))}")
    return params


def _load(reference: str, args: argparse.Namespace, parser: argparse.ArgumentParser):
    from gradreg.training.checkpoints import CheckpointError, load
    from gradreg.training.loop import resolve_device

    try:
        ckpt = load(reference)
    except CheckpointError as err:
        parser.error(str(err))
    return ckpt, ckpt.build(frozen=True, device=resolve_device(args.device))


def _data(dataset: str, args: argparse.Namespace, parser: argparse.ArgumentParser):
    from gradreg.core.data import DatasetUnavailable, load_dataset

    try:
        x, y = load_dataset(dataset, args.split).tensors
    except (ValueError, DatasetUnavailable) as err:
        parser.error(str(err))
    return x[: args.n], y[: args.n]


def _progress(description: str):
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="chunk", leave=False, file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _write(records: list[dict], args: argparse.Namespace) -> None:
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(records, handle, indent=2, default=str)
    if args.csv:
        flat = [{k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()} for r in records]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return float(f"{value:.4g}") if isinstance(value, float) else value  # significant digits: tiny norms stay visible


def cmd_attack(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """White-box accuracy per ε, printed as a table."""
    from gradreg.evaluation.accuracy import robust_accuracy

    params = _params(args, parser)
    ckpt, model = _load(args.checkpoint, args, parser)
    x, y = _data(args.dataset or ckpt.config.dataset, args, parser)
    records = robust_accuracy(model, x, y, method=args.method, epsilons=args.eps, target=args.target,
                              seed=args.seed, batch_size=args.batch_size, on_progress=_progress(args.method),
                              **params)
    records = [{"checkpoint": ckpt.id, **r} for r in records]
    extra = ["target_rate"] if "target_rate" in records[0] else []
    rows = [["eps", "accuracy", *extra]]
    rows += [[f"{r['eps']:g}", f"{r['accuracy']:.4f}", *[f"{r[k]:.4f}" for k in extra]] for r in records]
    print(f"{ckpt.id}: {args.method}{f' {params}' if params else ''} on the first {len(x)} {args.split} images")
    print(_table(rows))
    _write(records, args)
    return 0


def cmd_transfer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Transfer matrices (rows: source, columns: scored model), one per ε."""
    from gradreg.evaluation.transfer import transfer_matrix

    params = _params(args, parser)
    if len(set(args.checkpoints)) != len(args.checkpoints):
        parser.error("--checkpoints must be distinct")
    loaded = [_load(reference, args, parser) for reference in args.checkpoints]
    models = {ckpt.id: model for ckpt, model in loaded}
    if len(models) != len(loaded):
        parser.error("--checkpoints name the same checkpoint twice")
    x, y = _data(args.dataset or loaded[0][0].config.dataset, args, parser)
    records = transfer_matrix(models, x, y, method=args.method, epsilons=args.eps, target=args.target,
                              seed=args.seed, batch_size=args.batch_size, on_progress=_progress(args.method),
                              **params)
    names = list(models)
    print("\n".join(f"[{i}] {name}" for i, name in enumerate(names)))
    for eps in args.eps:
        cell = {(r["source"], r["model"]): r["accuracy"] for r in records if r["eps"] == eps}
        rows = [[f"ε={eps:g} src\\model", *[f"[{j}]" for j in range(len(names))]]]
        rows += [[f"[{i}]", *[f"{cell[(s, m)]:.4f}" for m in names]] for i, s in enumerate(names)]
        print(f"\n{args.method} accuracy, first {len(x)} {args.split} images (diagonal = white-box)")
        print(_table(rows))
    _write(records, args)
    return 0


def cmd_masking(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Gradient-masking checks, one line per check with its verdict."""
    from gradreg.evaluation.masking import masking_checks

    ckpt, model = _load(args.checkpoint, args, parser)
    source = _load(args.source, args, parser)[1] if args.source else None
    x, y = _data(args.dataset or ckpt.config.dataset, args, parser)
    records = masking_checks(model, x, y, epsilons=args.eps, large_eps=args.large_eps, source=source,
                             tolerance=args.tolerance, pgd_steps=args.steps, square_queries=args.queries,
                             seed=args.seed, batch_size=args.batch_size)
    print(f"{ckpt.id}: masking checks on the first {len(x)} {args.split} images")
    for r in records:
        print(f"{r['verdict'].upper():8} {r['check']:26} {r['detail']}")
        print(f"{'':8} {'':26} {json.dumps(_rounded(r['numbers']))}")
    _write([{"checkpoint": ckpt.id, **r} for r in records], args)
    return 0


COMMANDS = {"attack": cmd_attack, "transfer": cmd_transfer, "masking": cmd_masking}
