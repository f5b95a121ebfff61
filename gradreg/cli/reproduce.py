"""Command line for the reproduction: ``python -m gradreg reproduce …`` (registered by ``gradreg.cli.main``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradreg.cli.args import nonnegative_float, positive_int


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` and ``curve`` subcommands."""
    c = sub.add_parser("curve", help="transferred-FGSM accuracy during training, Normal vs GR(y), longer than the "
                                     "report's run (PAPER.md §6); prints a table, writes JSON")
    c.add_argument("--dataset", default="mnist")
    c.add_argument("--zoo", default=None, help="zoo whose Normal model crafts the examples and whose configs are "
                                               "retrained (default: the shipped zoo of --dataset)")
    c.add_argument("--epochs", type=positive_int, default=20)
    c.add_argument("--n-train", type=int, default=0, help="training images (0: all)")
    c.add_argument("--n", type=positive_int, default=1000, help="test images scored after each epoch")
    c.add_argument("--eps", type=nonnegative_float, default=0.2)
    c.add_argument("--model", default=None, help="retrain this architecture instead of the zoo's")
    c.add_argument("--lr", type=nonnegative_float, default=None, help="default: the zoo's (paper: 2e-4)")
    c.add_argument("--batch-size", type=positive_int, default=None, help="default: the zoo's (paper: 256)")
    c.add_argument("--lam", type=nonnegative_float, default=110.0, help="λ_eff of the GR(y) entry (nearest in the zoo)")
    c.add_argument("--device", default="auto")
    c.add_argument("--out", default=None, help="JSON file for the records")
    a = sub.add_parser("ablate", help="the recipe ablation: GR(y) at λ_eff 110 on the short CPU schedule with each "
                                      "detail of the authors' recipe, and narrower networks; prints a table, "
                                      "merges into reports/<dataset>/ablation.json")
    a.add_argument("--dataset", default="mnist")
    a.add_argument("--lams", type=nonnegative_float, nargs="+", default=[110.0], help="λ_eff values (GR(y))")
    a.add_argument("--networks", nargs="+", default=None,
                   help="only these networks, with the authors' recipe (a λ sweep); default: every row")
    a.add_argument("--root", default=None, help="where the models go (default: $GRADREG_CHECKPOINT_DIR/ablation)")
    a.add_argument("--out", default="reports", help="reports root; the records go to OUT/<dataset>/ablation.json")
    a.add_argument("--n-eval", type=positive_int, default=1000, help="test images for white-box FGSM")
    a.add_argument("--score", nargs="+", default=None, metavar="DIR",
                   help="instead of training: score the checkpoints in these directories (e.g. a longer schedule run "
                        "elsewhere) and keep them under 'long_runs' in ablation.json")
    a.add_argument("--row", default="long run", help="the row name of --score's records")
    r = sub.add_parser("robustness", help="clean, FGSM, PGD-40 with restarts and the AutoAttack-style ensemble for "
                                          "every paper role of a zoo, with timings -> reports/<dataset>/robustness.json")
    r.add_argument("--dataset", default="mnist")
    r.add_argument("--zoo", default=None, help="default: the shipped zoo of --dataset")
    r.add_argument("--n", type=positive_int, default=256, help="first N test images (GPU: 10000)")
    r.add_argument("--eps", type=nonnegative_float, nargs="+", default=[0.1, 0.2, 0.3])
    r.add_argument("--restarts", type=positive_int, default=5, help="PGD-40 random restarts")
    r.add_argument("--queries", type=positive_int, default=5000, help="Square queries in the ensemble")
    r.add_argument("--device", default="cpu")
    r.add_argument("--out", default="reports", help="reports root; the records go to OUT/<dataset>/robustness.json")
    p = sub.add_parser("reproduce", help="run the paper's experiments on the zoo; write REPORT.md, PNGs, results.json")
    p.add_argument("--dataset", default="mnist", help="the zoo's dataset (checked against its manifest)")
    p.add_argument("--quick", action="store_true", help="fewer images and ε, weaker PGD/Square: a few minutes")
    p.add_argument("--zoo", default=None, help="zoo directory holding manifest.json (default: the shipped zoo of "
                   "--dataset: checkpoints/ for mnist, checkpoints/<dataset>/ otherwise)")
    p.add_argument("--out", default="reports", help="reports root; the report goes to OUT/<dataset>/")
    p.add_argument("--lam", type=nonnegative_float, default=110.0, help="λ_eff of the compared Grad Reg (y) model")
    p.add_argument("--render", action="store_true", help="run nothing: rewrite REPORT.md from the results.json beside "
                   "it, with the current robustness.json and ablation.json (after `robustness` or `ablate` ran)")


def _zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, dict]:
    """The zoo directory (``--zoo`` or the shipped one of ``--dataset``) and its manifest; exit 2 when it is missing,
    unreadable or for another dataset."""
    from gradreg.paper.zoo import default_dir, read_manifest

    root = args.zoo or str(default_dir(args.dataset))
    try:
        manifest = read_manifest(root)
    except ValueError as err:
        parser.error(str(err))
    if manifest is None:
        parser.error(f"no manifest.json in {root}: build the zoo first (python -m gradreg zoo)")
    if manifest["dataset"] != args.dataset:
        parser.error(f"the zoo in {root} is for {manifest['dataset']!r}, not {args.dataset!r}")
    return root, manifest


def _cmd_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from gradreg.paper.report import write_report
    from gradreg.paper.report_figures import write_figures
    from gradreg.paper.reproduce import PROFILES, STEPS, run

    if args.render:
        return _render(Path(args.out) / args.dataset, parser)
    args.zoo, _ = _zoo(args, parser)
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


def _render(out: Path, parser: argparse.ArgumentParser) -> int:
    """REPORT.md again from ``out/results.json`` (records, meta, figure status) and the JSON files beside it."""
    import json

    from gradreg.paper.report import write_report
    from gradreg.paper.reproduce import Reproduction

    try:
        saved = json.loads((out / "results.json").read_text())
        meta = dict(saved["meta"])
        profile, seconds, status = meta.pop("profile"), meta.pop("seconds"), meta.pop("figures")
        rep = Reproduction(records=saved["records"], meta=meta)
    except (OSError, ValueError, KeyError, TypeError) as err:
        parser.error(f"cannot re-render from {out / 'results.json'} ({err}): run `python -m gradreg reproduce` first")
    print(f"re-rendered -> {write_report(rep, out, status=status, profile=profile, seconds=seconds)}")
    return 0


def _cmd_curve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    from gradreg.core.config import TrainConfig
    from gradreg.core.data import load_dataset
    from gradreg.paper.reproduce import assign_roles, load_models
    from gradreg.paper.training_curves import curve_config, transfer_during_training

    root, manifest = _zoo(args, parser)
    roles = assign_roles(manifest, lam=args.lam)
    if not {"plain", "grad_y"} <= set(roles):
        parser.error(f"the zoo in {root} needs a 'plain' and a grad_y entry")
    entries = {m["name"]: m["config"] for m in manifest["models"]}
    overrides = {k: v for k, v in (("model", args.model), ("lr", args.lr), ("batch_size", args.batch_size),
                                   ("device", args.device)) if v is not None}
    try:
        configs = {role: curve_config(TrainConfig.from_dict(entries[roles[role]] | overrides), epochs=args.epochs,
                                      n_train=args.n_train or None, seed=1) for role in ("plain", "grad_y")}
    except ValueError as err:
        parser.error(str(err))
    source = load_models(root, {"plain": roles["plain"]}, {"models": [m for m in manifest["models"]
                                                                      if m["name"] == roles["plain"]]})[roles["plain"]]
    x, y = load_dataset(args.dataset, "test").tensors
    started = time.perf_counter()
    records = transfer_during_training(configs, source, x[:args.n], y[:args.n], eps=args.eps)
    print(f"| epoch | Normal transferred / clean | GR(y) ({roles['grad_y']}) transferred / clean |\n|---|---|---|")
    for epoch in sorted({r["epoch"] for r in records}):
        cells = [next(r for r in records if r["model"] == m and r["epoch"] == epoch) for m in ("plain", "grad_y")]
        print(f"| {epoch} | " + " | ".join(f"{c['transfer_fgsm']:.3f} / {c['clean']:.3f}" for c in cells) + " |")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.out:
        meta = {"configs": {r: c.to_dict() for r, c in configs.items()}, "source": roles["plain"], "eps": args.eps,
                "n": args.n, "seconds": round(time.perf_counter() - started, 1)}
        Path(args.out).write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    return 0


def _cmd_ablate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    from gradreg.paper import ablation
    from gradreg.training import checkpoints
    from gradreg.training.files import write_json

    path = Path(args.out) / args.dataset / "ablation.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    started = time.perf_counter()
    if args.score:
        files = sorted(p for d in args.score for p in Path(d).glob("*" + checkpoints.SUFFIX))
        scored = ablation.score_trained(files, name=args.row, n_eval=args.n_eval)
        write_json(saved | {"long_runs": ablation.merge(saved.get("long_runs", []), scored)}, path)
        print(ablation.long_table(scored))
        print(f"{len(scored)} checkpoints scored in {time.perf_counter() - started:.0f} s -> {path}")
        return 0
    rows = ablation.select(ablation.ROWS, args.networks) if args.networks else ablation.ROWS
    root = args.root or str(checkpoints.user_dir() / "ablation")
    old = saved.get("records", [])
    records = ablation.run_ablation(rows, root=root, dataset=args.dataset, lams=tuple(args.lams),
                                    n_eval=args.n_eval, on_row=lambda r: print(ablation.table([r]).splitlines()[-1],
                                                                               flush=True))
    merged = ablation.merge(old, records)
    write_json(saved | {"schedule": ablation.SHORT, "n_eval": args.n_eval, "records": merged}, path)
    print(ablation.table(records))
    print(f"{len(records)} rows in {time.perf_counter() - started:.0f} s -> {path}")
    return 0


def _cmd_robustness(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch
    from tqdm import tqdm

    from gradreg.core.data import load_dataset
    from gradreg.evaluation.robustness import robustness_records
    from gradreg.paper.reproduce import COMPARED, EXTRAS, assign_roles
    from gradreg.training import checkpoints
    from gradreg.training.files import write_json

    root, manifest = _zoo(args, parser)
    roles = {role: name for role, name in assign_roles(manifest).items() if role in COMPARED + EXTRAS}
    files = {m["name"]: m["file"] for m in manifest["models"]}
    device = torch.device(args.device)
    models = {role: checkpoints.load(Path(root) / files[name]).build(device=device) for role, name in roles.items()}
    x, y = load_dataset(args.dataset, "test", n=args.n).tensors
    bar = tqdm(total=len(models) * len(args.eps), unit="cell", dynamic_ncols=True)
    started = time.perf_counter()

    def on_step(name: str, eps: float) -> None:
        bar.set_description(f"{name} ε {eps:g}")
        bar.update(1)

    records = robustness_records(models, x.to(device), y.to(device), epsilons=args.eps, restarts=args.restarts,
                                 queries=args.queries, on_step=on_step)
    bar.close()
    seconds = time.perf_counter() - started
    meta = {"zoo": {role: roles[role] for role in models}, "n": args.n, "epsilons": args.eps, "pgd_steps": 40,
            "restarts": args.restarts, "ensemble": {"steps": 100, "targets": 3, "queries": args.queries},
            "device": args.device, "threads": torch.get_num_threads(), "seconds": round(seconds, 1)}
    path = write_json({"meta": meta, "records": records}, Path(args.out) / args.dataset / "robustness.json")
    print(f"{len(records)} cells in {seconds / 60:.1f} min -> {path}")
    return 0


COMMANDS = {"reproduce": _cmd_reproduce, "curve": _cmd_curve, "ablate": _cmd_ablate, "robustness": _cmd_robustness}
