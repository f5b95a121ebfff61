"""Command line: ``python -m gradreg {train,list,data} …``.

Bad arguments exit with code 2 and a message that lists the valid choices (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Sequence

from gradreg.cli import attack, reproduce, sweep, zoo
from gradreg.cli.args import nonnegative_float, positive_int
from gradreg.core.config import ACTIVATIONS, DEFENCES, DEVICES, INITS, LR_SCHEDULES, RECIPES, TrainConfig, with_recipe


def _add_train(sub: argparse._SubParsersAction) -> None:
    from gradreg.core.data import DATASETS
    from gradreg.core.models import MODELS
    from gradreg.training.regularizers import REGULARIZERS

    p = sub.add_parser("train", help="train one model (flags mirror TrainConfig) and save its checkpoint")
    d = TrainConfig()
    p.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset)
    p.add_argument("--model", choices=sorted(MODELS), default=d.model)
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation)
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="init, BatchNorm scale and Adam ε together (authors: Xavier, no γ, 1e-4; torch: PyTorch's "
                        "defaults); overrides the three flags below")
    p.add_argument("--init", choices=INITS, default=d.init)
    p.add_argument("--bn-scale", action=argparse.BooleanOptionalAction, default=d.bn_scale,
                   help="a learned BatchNorm scale γ (the authors' BatchNorm has none)")
    p.add_argument("--adam-eps", type=nonnegative_float, default=d.adam_eps, help="Adam's ε (the authors': 1e-4)")
    p.add_argument("--regularizer", choices=sorted(REGULARIZERS), default=d.regularizer)
    p.add_argument("--lam", type=nonnegative_float, default=d.lam, help="λ_eff (per-example mean convention)")
    p.add_argument("--lam-authors", type=nonnegative_float, default=None,
                   help="the authors' TensorFlow λ at batch 256; converted to λ_eff = λ/512 (overrides --lam)")
    p.add_argument("--defence", choices=DEFENCES, default=d.defence)
    p.add_argument("--adv-eps", type=nonnegative_float, default=d.adv_eps)
    p.add_argument("--adv-steps", type=positive_int, default=d.adv_steps)
    p.add_argument("--temperature", type=nonnegative_float, default=d.temperature)
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=nonnegative_float, default=d.lr)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-train", type=positive_int, default=None)
    p.add_argument("--device", choices=DEVICES, default=d.device)
    p.add_argument("--out", default=None, help="checkpoint directory (default: $GRADREG_CHECKPOINT_DIR or cache)")
    p.add_argument("--retrain", action="store_true", help="train even if this config's checkpoint exists")


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    from gradreg.core.config import lam_from_authors

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.lam_authors is not None:
        values["lam"] = lam_from_authors(args.lam_authors)
    config = TrainConfig(**values)
    return with_recipe(config, args.recipe) if args.recipe else config


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from gradreg.training import checkpoints
    from gradreg.training.reuse import load_or_train
    from gradreg.training.loop import train

    try:
        config = _config_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    bar = tqdm(unit="batch", dynamic_ncols=True)

    def on_batch(batch: int, batches: int, running: dict) -> None:
        bar.total = batches
        bar.n = batch
        bar.set_postfix(loss=f"{running['loss']:.3f}", penalty=f"{running['penalty']:.3g}",
                        acc=f"{running['accuracy']:.3f}", refresh=False)
        bar.refresh()

    def on_epoch(stats) -> None:
        bar.write(f"{stats.phase} epoch {stats.epoch}/{stats.epochs}: loss {stats.loss:.4f} ce {stats.ce:.4f} "
                  f"penalty {stats.penalty:.4g} train acc {stats.train_accuracy:.4f} val acc "
                  f"{stats.val_accuracy:.4f} |∇x| {stats.grad_norm:.4g} ({stats.seconds:.1f} s)")
        bar.reset()

    if args.retrain:
        ckpt = train(config, on_epoch=on_epoch, on_batch=on_batch)
        path = checkpoints.save(ckpt, args.out)
    else:
        ckpt = load_or_train(config, root=args.out, on_epoch=on_epoch, on_batch=on_batch)
        path = checkpoints.find(ckpt.id) if args.out is None else f"{args.out}/{ckpt.id}{checkpoints.SUFFIX}"
    bar.close()
    print(f"test accuracy {ckpt.metrics['test_accuracy']:.4f}; trained in {ckpt.train_seconds:.1f} s")
    print(f"checkpoint {ckpt.id} -> {path}")
    return 0


def _cmd_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from gradreg.training.checkpoints import list_checkpoints

    infos = list_checkpoints(args.dir)
    if not infos:
        print("no checkpoints found")
    for info in infos:
        if info.ok:
            acc = info.metrics.get("test_accuracy")
            acc_text = f"{acc:.4f}" if isinstance(acc, (int, float)) else "?"
            print(f"ok        {info.id}  test acc {acc_text}{'' if info.complete else '  (stopped early)'}  {info.path}")
        else:
            print(f"UNUSABLE  {info.path}: {info.reason}")
    return 0


def _cmd_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from gradreg.core.data import dataset_status

    for row in dataset_status():
        print(f"{'yes' if row['available'] else 'no ':4} {row['name']:14} {row['detail']}")
    return 0


COMMANDS = {"train": _cmd_train, "list": _cmd_list, "data": _cmd_data, **attack.COMMANDS, **zoo.COMMANDS,
            **reproduce.COMMANDS, **sweep.COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gradreg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("list", help="list checkpoints, usable or not, with the reason")
    p.add_argument("--dir", default=None, help="a directory (default: user dir, then shipped checkpoints/)")
    sub.add_parser("data", help="which datasets are available on this machine and where from")
    attack.add_parsers(sub)
    zoo.add_parsers(sub)
    reproduce.add_parsers(sub)
    sweep.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args, parser)
    except ValueError as err:  # the library's answer to bad input (CheckpointError, LimitError…): exit 2, no traceback
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
