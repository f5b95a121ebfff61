"""Bad input gets a clear error: seeded fuzzing of the public API and of the CLI.

A grammar of bad values (NaN, inf, negative, huge, wrong dims, wrong dtype, empty tensors, unknown names, wrong
types) is substituted, one argument at a time, into otherwise valid calls. The API may only answer with
``ValueError`` / ``TypeError`` (or return normally when the value is merely unusual); the CLI may only exit with
code 2 and a message, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
import torch

from gradreg import TrainConfig, accuracy, attack, build_model, input_gradient_norms, lam_from_authors, load_dataset
from gradreg import fgsm, penalty, pgd, robust_accuracy, train, transfer_matrix
from gradreg.cli.main import main
from gradreg.evaluation.masking import masking_checks
from gradreg.explain.metrics import curve_auc, deletion_curve, gini, total_variation
from gradreg.explain.randomization import map_similarity, randomization_check
from gradreg.explain.saliency import saliency
from gradreg.training.checkpoints import list_checkpoints, load

SEED = 20180202
ALLOWED = (ValueError, TypeError)


def _images(kind: str, base: torch.Tensor) -> object:
    """A bad value for an images argument ``(N, 1, 28, 28)`` in [0, 1]."""
    n = len(base)
    return {
        "nan": base.clone().index_fill_(0, torch.tensor([0]), float("nan")),
        "inf": base + float("inf"),
        "negative": base - 0.5,
        "huge": base * 1e30,
        "2d": base[:, 0, 0],
        "3d": base[:, 0],
        "5d": base[None],
        "int": (base * 255).long(),
        "bool": base > 0.5,
        "float64": base.double(),
        "float16": base.half(),
        "channels": base.expand(n, 3, 28, 28).clone(),
        "size": base[:, :, :14, :14].clone(),
        "empty_hw": base[:, :, :0, :0],
        "numpy": base.numpy(),
        "list": base.tolist(),
        "none": None,
        "string": "images",
    }[kind]


IMAGE_KINDS = ("nan", "inf", "negative", "huge", "2d", "3d", "5d", "int", "bool", "float64", "float16", "channels",
               "size", "empty_hw", "numpy", "list", "none", "string")


def _labels(kind: str, base: torch.Tensor) -> object:
    return {
        "float": base.float(), "2d": base[:, None], "short": base[:-1], "long": torch.cat([base, base]),
        "ten": torch.full_like(base, 10), "negative": torch.full_like(base, -1), "huge": torch.full_like(base, 10**12),
        "bool": base > 4, "numpy": base.numpy(), "none": None, "string": "labels", "list": base.tolist(),
    }[kind]


LABEL_KINDS = ("float", "2d", "short", "long", "ten", "negative", "huge", "bool", "numpy", "none", "string", "list")
NUMBERS = (float("nan"), float("inf"), float("-inf"), -1.0, -1e-9, "0.1", None, [0.1], True, 1j,
           torch.tensor([float("nan")]))
COUNTS = (0, -1, 1.5, "3", None, True, float("nan"), [2])
FRACTIONS = (-0.1, 1.5, float("nan"), "0.5", None)
NAMES = ("", "FGSM", "nope", None, 3, "fgsm ", "../../etc/passwd", ["fgsm"])


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic[0][:4].clone(), synthetic[1][:4].clone()


def _api_cases(model, x, y) -> list[tuple[str, callable]]:
    """(description, zero-argument call) for every bad value of every argument of the public API."""
    cases = []

    def add(name: str, fn, **defaults) -> None:
        cases.append((name, lambda: fn(**defaults)))

    def images_and_labels(name, fn, **kw):
        for kind in IMAGE_KINDS:
            add(f"{name} x={kind}", fn, **{**kw, "x": _images(kind, x)})
        for kind in LABEL_KINDS:
            add(f"{name} y={kind}", fn, **{**kw, "y": _labels(kind, y)})

    run_attack = lambda x, y, method="fgsm", eps=0.1, **p: attack(model, x, y, method, eps=eps, **p)
    images_and_labels("attack", run_attack, x=x, y=y)
    for value in NUMBERS:
        add(f"attack eps={value!r}", run_attack, x=x, y=y, eps=value)
        add(f"pgd step_size={value!r}", run_attack, x=x, y=y, method="pgd", steps=2, step_size=value)
    for method in NAMES:
        add(f"attack method={method!r}", run_attack, x=x, y=y, method=method)
    for value in COUNTS:
        add(f"pgd steps={value!r}", run_attack, x=x, y=y, method="pgd", steps=value)
        add(f"pgd restarts={value!r}", run_attack, x=x, y=y, method="pgd", steps=2, restarts=value)
        add(f"square queries={value!r}", run_attack, x=x, y=y, method="square", queries=value)
    for value in FRACTIONS:
        add(f"jsma gamma={value!r}", run_attack, x=x, y=y, method="jsma", eps=None, gamma=value)
        add(f"square p_init={value!r}", run_attack, x=x, y=y, method="square", queries=5, p_init=value)
    for name in NAMES:
        add(f"pgd norm={name!r}", run_attack, x=x, y=y, method="pgd", steps=2, norm=name)
        add(f"tgsm target={name!r}", run_attack, x=x, y=y, method="tgsm", target=name)
    add("fgsm with a target", run_attack, x=x, y=y, target="next")
    add("fgsm unknown knob", run_attack, x=x, y=y, steps=3)
    add("tgsm target out of range", run_attack, x=x, y=y, method="tgsm", target=torch.full_like(y, 10))

    for name, fn in (("fgsm", fgsm), ("pgd", pgd)):  # exported on their own too
        images_and_labels(name, lambda x, y, fn=fn: fn(model, x, y, eps=0.1), x=x, y=y)
    run_saliency = lambda x, target="pred", method="input_gradient", **p: saliency(model, x, target, method, **p)
    for kind in IMAGE_KINDS:
        add(f"saliency x={kind}", run_saliency, x=_images(kind, x))
    for name in NAMES:
        add(f"saliency method={name!r}", run_saliency, x=x, method=name)
        add(f"saliency target={name!r}", run_saliency, x=x, target=name)
    for target in (10, -1, 2.5, torch.zeros(3, dtype=torch.long), torch.zeros(4), True):
        add(f"saliency target={target!r}", run_saliency, x=x, target=target)
    for value in COUNTS:
        add(f"integrated_gradients steps={value!r}", run_saliency, x=x, method="integrated_gradients", steps=value)
        add(f"smoothgrad samples={value!r}", run_saliency, x=x, method="smoothgrad", samples=value)
        add(f"occlusion window={value!r}", run_saliency, x=x, method="occlusion", window=value)
    for value in NUMBERS:
        add(f"smoothgrad stdev={value!r}", run_saliency, x=x, method="smoothgrad", samples=2, stdev=value)
    add("saliency unknown knob", run_saliency, x=x, steps=3)

    images_and_labels("accuracy", lambda x, y: accuracy(model, x, y), x=x, y=y)
    images_and_labels("input_gradient_norms", lambda x, y: input_gradient_norms(model, x, y), x=x, y=y)
    run_robust = lambda x, y, method="fgsm", epsilons=(0.1,), **p: robust_accuracy(model, x, y, method=method,
                                                                                   epsilons=epsilons, **p)
    images_and_labels("robust_accuracy", run_robust, x=x, y=y)
    for value in NUMBERS + ((), "0.1", [[0.1]]):
        add(f"robust_accuracy epsilons=[{value!r}]", run_robust, x=x, y=y,
            epsilons=value if isinstance(value, (tuple, str)) else [value])
    for value in COUNTS:
        add(f"robust_accuracy batch_size={value!r}", run_robust, x=x, y=y, batch_size=value)
    run_transfer = lambda models=None, x=x, y=y, method="fgsm", epsilons=(0.1,): transfer_matrix(
        {"a": model, "b": model} if models is None else models, x, y, method=method, epsilons=epsilons)
    images_and_labels("transfer_matrix", run_transfer, x=x, y=y)
    for models in ({}, {"a": "not a model"}, ["a"], None and {}, {"a": None}):
        add(f"transfer_matrix models={models!r}", run_transfer, models=models)
    for name in NAMES:
        add(f"transfer_matrix method={name!r}", run_transfer, method=name)
    run_masking = lambda x=x, y=y, **kw: masking_checks(model, x, y, **{"pgd_steps": 2, "square_queries": 5,
                                                                         "epsilons": (0.1,), **kw})
    images_and_labels("masking_checks", run_masking, x=x, y=y)
    for value in NUMBERS:
        add(f"masking_checks large_eps={value!r}", run_masking, large_eps=value)
        add(f"masking_checks tolerance={value!r}", run_masking, tolerance=value)
    for value in COUNTS:
        add(f"masking_checks pgd_steps={value!r}", run_masking, pgd_steps=value)
    add("masking_checks source=str", run_masking, source="plain")

    run_penalty = lambda x=x, y=y, regularizer="grad_y": penalty(model, x, y, regularizer=regularizer)
    images_and_labels("penalty", run_penalty, x=x, y=y)
    for name in NAMES:
        add(f"penalty regularizer={name!r}", run_penalty, regularizer=name)

    maps = torch.rand_like(x)
    for kind in IMAGE_KINDS:
        if kind not in ("nan", "inf", "negative", "huge", "int", "bool", "float64", "float16"):  # maps are signed
            add(f"map_similarity a={kind}", lambda a: map_similarity(a, maps), a=_images(kind, x))
            add(f"total_variation a={kind}", lambda a: total_variation(a), a=_images(kind, x))
            add(f"gini a={kind}", lambda a: gini(a), a=_images(kind, x))
            add(f"deletion_curve a={kind}", lambda a: deletion_curve(model, x, a, "pred", steps=4), a=_images(kind, x))
    for name in NAMES:
        add(f"map_similarity metric={name!r}", lambda m: map_similarity(maps, maps, m), m=name)
        add(f"randomization_check method={name!r}", lambda m: randomization_check(model, x, "pred", method=m), m=name)
    for value in COUNTS:
        add(f"deletion_curve steps={value!r}", lambda s: deletion_curve(model, x, maps, "pred", steps=s), s=value)
    for curve in (torch.zeros(3, 1), torch.zeros(3), torch.zeros(0, 5), "curve"):
        add(f"curve_auc {getattr(curve, 'shape', curve)}", lambda c: curve_auc(c), c=curve)

    valid = TrainConfig(dataset="synthetic").to_dict()
    bad_fields = {"dataset": NAMES, "model": NAMES, "activation": NAMES, "regularizer": NAMES, "defence": NAMES,
                  "lr_schedule": NAMES, "device": NAMES, "lam": NUMBERS, "adv_eps": NUMBERS + (1.5,),
                  "temperature": NUMBERS + (0.0,), "lr": NUMBERS + (0.0, 100.0), "epochs": COUNTS,
                  "batch_size": COUNTS, "adv_steps": COUNTS, "seed": (-1, 1.5, "0", None, True),
                  "n_train": (0, 5, -1, 1.5, "100", True)}
    for field, values in bad_fields.items():
        for value in values:
            add(f"TrainConfig {field}={value!r}", lambda kw: TrainConfig(**kw), kw={**valid, field: value})
    add("TrainConfig unknown field", lambda kw: TrainConfig.from_dict(kw), kw={**valid, "evil": 1})
    add("TrainConfig lam without regularizer", lambda: TrainConfig(lam=3.0))
    for config in (None, "config", {"dataset": "synthetic"}, valid):
        add(f"train config={type(config).__name__}", lambda c: train(c), c=config)
    for name in NAMES:
        add(f"load_dataset name={name!r}", lambda n: load_dataset(n, "test"), n=name)
        add(f"load_dataset split={name!r}", lambda s: load_dataset("synthetic", s), s=name)
        add(f"build_model name={name!r}", lambda n: build_model(n), n=name)
    for value in COUNTS:
        add(f"load_dataset n={value!r}", lambda n: load_dataset("synthetic", "test", n=n), n=value)
    for kwargs in ({"num_classes": 0}, {"num_classes": -3}, {"in_channels": 0}, {"activation": "tanh"}, {"evil": 1},
                   {"num_classes": "10"}):
        add(f"build_model small_cnn {kwargs}", lambda kw: build_model("small_cnn", **kw), kw=kwargs)
    for value in NUMBERS:
        add(f"lam_from_authors {value!r}", lambda v: lam_from_authors(v), v=value)
    for reference in ("", "no-such-model", "/", "/etc/passwd", "../../etc/shadow", None, 3, "x" * 5000, "\x00"):
        add(f"load {reference!r:.40}", lambda r: load(r), r=reference)
    for root in ("/etc/passwd", 3, "\x00"):
        add(f"list_checkpoints {root!r}", lambda r: list_checkpoints(r), r=root)
    return cases


def _call(fn) -> str:
    """'' when ``fn`` returns or raises an allowed exception; otherwise the exception's description."""
    try:
        fn()
    except ALLOWED:
        return ""
    except Exception as err:  # noqa: BLE001 — anything else is what this test exists to find
        return f"{type(err).__name__}: {err}"[:300]
    return ""


def test_api_fuzz_raises_only_value_or_type_errors(tiny_model, data):
    x, y = data
    cases = _api_cases(tiny_model, x, y)
    assert len(cases) >= 300, len(cases)
    random.Random(SEED).shuffle(cases)  # order must not matter either
    failures = [f"{name}: {problem}" for name, fn in cases if (problem := _call(fn))]
    assert failures == [], "\n".join(failures)
    assert all(p.grad is None for p in tiny_model.parameters()) and not tiny_model.training


# The CLI: one flag at a time replaced by a bad value; each must exit 2 with a message and no traceback.
BAD_NUMBERS = ("nan", "inf", "-inf", "-1", "abc", "", "1e999", "0x10")
BAD_COUNTS = ("0", "-1", "1.5", "abc", "", "1e3")


def _cli_cases(checkpoint: str, hostile: str, out: str) -> list[list[str]]:
    train = ["train", "--dataset", "synthetic", "--epochs", "1", "--n-train", "200", "--out", out]
    attack = ["attack", "--checkpoint", checkpoint, "--method", "fgsm", "--eps", "0.1", "--n", "8"]
    transfer = ["transfer", "--checkpoints", checkpoint, hostile, "--method", "fgsm", "--eps", "0.1", "--n", "8"]
    masking = ["masking", "--checkpoint", checkpoint, "--n", "8", "--steps", "2", "--queries", "5"]
    flags = {
        "train": {"--dataset": ("nope", "", "../mnist"), "--model": ("resnet",), "--activation": ("tanh",),
                  "--regularizer": ("l1",), "--lam": BAD_NUMBERS, "--lam-authors": BAD_NUMBERS,
                  "--defence": ("none2",), "--adv-eps": BAD_NUMBERS + ("2",), "--adv-steps": BAD_COUNTS,
                  "--temperature": BAD_NUMBERS + ("0",), "--epochs": BAD_COUNTS, "--batch-size": BAD_COUNTS,
                  "--lr": BAD_NUMBERS + ("0", "100"), "--lr-schedule": ("step",), "--seed": ("-1", "1.5", "x"),
                  "--n-train": BAD_COUNTS + ("5",), "--device": ("tpu",)},
        "attack": {"--checkpoint": ("no-such-id", hostile, "/", "/etc/passwd", ""),
                   "--method": ("nope", "FGSM", ""), "--eps": BAD_NUMBERS, "--n": BAD_COUNTS,
                   "--dataset": ("nope", "../../etc"), "--split": ("holdout",), "--batch-size": BAD_COUNTS,
                   "--seed": ("x", "1.5"), "--device": ("tpu",), "--target": ("next", "nope"),
                   "--steps": ("3",), "--norm": ("l2", "l3"), "--gamma": ("0.5",), "--queries": ("5",),
                   "--p-init": ("0.5",), "--restarts": ("2",), "--step-size": BAD_NUMBERS[:3]},
        "masking": {"--checkpoint": ("no-such-id", hostile), "--source": ("no-such-id", hostile),
                    "--eps": BAD_NUMBERS, "--large-eps": BAD_NUMBERS, "--steps": BAD_COUNTS,
                    "--queries": BAD_COUNTS, "--tolerance": BAD_NUMBERS + ("2",), "--n": BAD_COUNTS},
    }
    bases = {"train": train, "attack": attack, "masking": masking}
    cases = []
    for command, options in flags.items():
        base = bases[command]
        for flag, values in options.items():
            for value in values:
                args = list(base)
                if flag in args:
                    args[args.index(flag) + 1] = value
                else:
                    args += [flag, value]
                cases.append(args)
    cases += [transfer, ["transfer", "--checkpoints", checkpoint, checkpoint, "--method",
                                                       "fgsm", "--eps", "0.1"]]
    cases += [[], ["frobnicate"], ["train", "--bogus"], ["train", "--epochs"], ["attack"], ["list", "--dir"],
              ["attack", "--checkpoint", checkpoint, "--method", "pgd", "--eps", "0.1", "--p-init", "0.5"],
              ["attack", "--checkpoint", checkpoint, "--method", "square", "--eps", "0.1", "--p-init", "2",
               "--queries", "5", "--n", "4"],
              ["attack", "--checkpoint", checkpoint, "--method", "jsma", "--eps", "0.1", "--gamma", "2", "--n", "4"],
              ["train", "--dataset", "synthetic", "--lam", "3"], ["train", "--lam", "\x00"]]
    return cases


def _run_cli(args: list[str]) -> tuple[object, str]:
    """(exit code or the unexpected exception, stderr) of ``main(args)`` in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_info:
            code = exit_info.code
        except Exception as exc:  # noqa: BLE001
            code = exc
    return code, err.getvalue()


def test_cli_fuzz_exits_2_with_a_message(tiny_ckpt_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path / "user"))
    (info,) = [i for i in list_checkpoints(tiny_ckpt_dir) if i.ok]
    hostile = tmp_path / "hostile.safetensors"
    hostile.write_bytes(b"\x80\x04junk")
    cases = _cli_cases(str(info.path), str(hostile), str(tmp_path / "out"))
    assert len(cases) >= 150, len(cases)
    failures = []
    for args in cases:
        code, stderr = _run_cli(args)
        if code != 2 or "error:" not in stderr or "Traceback" in stderr:
            failures.append(f"{args[1:] if args else args}: exit {code!r} {stderr.strip()[-200:]!r}")
    assert failures == [], "\n".join(failures)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "a bad command trained"


# Uploads (gradreg.digit): every picture either becomes a (28, 28) image in [0, 1] or an UploadError (a ValueError).
def _png(array: np.ndarray, mode: str | None = None, **save) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def _upload_cases(rng: random.Random) -> list[tuple[str, object, bool]]:
    """(description, data, must_be_refused)."""
    from PIL import Image

    from gradreg.lessons.digit import MAX_BYTES

    digit = np.zeros((40, 30), np.uint8)
    digit[8:32, 12:18] = 255  # a "1"
    rgba = np.dstack([digit, digit, digit, np.where(digit > 0, 255, 0).astype(np.uint8)])
    frames = [Image.fromarray(np.roll(digit, k, axis=1)) for k in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    bomb = bytearray(_png(np.zeros((1, 1), np.uint8)))
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height: 10¹⁰ pixels claimed
    cases = [
        ("rgba", _png(rgba), False), ("16-bit", _png(digit.astype(np.uint16) * 257), False),
        ("animated gif", gif.getvalue(), False), ("jpeg", _png(digit, format="JPEG"), False),
        ("1x1", _png(np.full((1, 1), 255, np.uint8)), True), ("blank", _png(np.zeros((28, 28), np.uint8)), True),
        ("transparent", _png(np.zeros((28, 28, 4), np.uint8)), True), ("empty bytes", b"", True),
        ("text", b"hello, this is not an image", True), ("oversized", b"\x89PNG" + b"\x00" * (MAX_BYTES + 1), True),
        ("bomb header", bytes(bomb), True), ("truncated png", _png(digit)[:40], True),
        ("string", "digit.png", True), ("none", None, True), ("list", [[0, 1], [1, 0]], True),
        ("nan array", np.full((28, 28), np.nan), True), ("5d array", np.zeros((2, 2, 2, 2, 2)), True),
        ("empty array", np.zeros((0, 0)), True), ("negative floats", -np.ones((28, 28)), True),
        ("complex array", np.zeros((28, 28), np.complex64), True), ("2 channels", np.zeros((8, 8, 7)), True),
    ]
    for i in range(60):  # random garbage and random corruptions of a good file
        good = _png(digit)
        if i % 2:
            cut = rng.randrange(len(good))
            data = good[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + good[cut + 1:]
            cases.append((f"corrupted png #{i}", data, False))  # may still decode: then it must be a fine image
        else:
            cases.append((f"random bytes #{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))),
                          True))
    return cases


def test_upload_fuzz_gives_an_image_or_an_upload_error():
    from gradreg.lessons.digit import UploadError, preprocess_image

    cases = _upload_cases(random.Random(SEED))
    failures = []
    for name, data, refused in cases:
        try:
            image = preprocess_image(data)
        except UploadError as err:
            if not str(err):
                failures.append(f"{name}: an UploadError without a message")
            continue
        except Exception as err:  # noqa: BLE001
            failures.append(f"{name}: {type(err).__name__}: {err}"[:200])
            continue
        ok = isinstance(image, np.ndarray) and image.shape == (28, 28) and bool(np.isfinite(image).all())
        ok = ok and image.min() >= 0 and image.max() <= 1
        if refused or not ok:
            failures.append(f"{name}: {'accepted' if refused else 'bad image'}")
    assert failures == [], "\n".join(failures)
