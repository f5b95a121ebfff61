"""Sweep files: a TOML grid expanded into frozen ``TrainConfig``s, one ``Trial`` each (pure code, no torch).

A file has three kinds of table::

    [sweep]                 # name, n_eval (test images per card, 0: none), epsilons, reference (a role's name)
    [grid]                  # TrainConfig fields (and "recipe") every trial shares; a list is an axis of the grid
    [[role]]                # one per kind of model: a name and its own fields (lists are axes too)

Each role expands into the cartesian product of its axes and the grid's (a role's field replaces the grid's). A
trial is named by its role and the values of every axis with more than one value (``grad_y-lam110-seed1``). With a
``reference`` and cards, every other trial of a dataset waits for that dataset's first reference trial: its
model crafts the transferred FGSM of their cards (Ross & Doshi-Velez 2018, arXiv 1711.09404, PAPER.md §5).
Defensive distillation trains its own teacher first, inside the trial (the training loop's teacher phase).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from gradreg.core.config import RECIPES, TrainConfig, config_id

SWEEP_KEYS = ("name", "n_eval", "epsilons", "reference", "pgd_steps")
CONFIG_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "device") + ("recipe",)
FLOAT_KEYS = tuple(f.name for f in fields(TrainConfig) if isinstance(f.default, float))
ABBREVIATIONS = {"dataset": "", "model": "", "regularizer": "", "defence": "", "recipe": "", "lam": "lam",
                 "seed": "seed", "epochs": "e", "n_train": "n"}
MAX_TRIALS = 10_000  # a typo in a grid (a range written out by hand) is refused rather than queued for days
DEFAULT_EPSILONS = (0.1, 0.2, 0.3)


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and the field."""


@dataclass(frozen=True)
class Trial:
    """One model of a sweep: what to train, where to store it, and what to measure on it.

    ``after`` names the trials that must finish first; ``reference`` the trial whose model crafts this one's
    transferred FGSM. ``root`` (absolute, or None for the sweep's own ``checkpoints/``) and ``half`` (store the
    weights in half precision, re-scored) serve the zoo; ``curve_source`` (a checkpoint path) records the training
    curve against that model (PAPER.md §5–6).
    """

    name: str
    role: str
    config: TrainConfig
    n_eval: int = 0
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    pgd_steps: int = 20
    reference: str | None = None
    after: tuple[str, ...] = ()
    root: str | None = None
    half: bool = False
    curve_source: str | None = None

    @property
    def id(self) -> str:
        return config_id(self.config)

    def to_dict(self) -> dict:
        """Plain JSON values only (what crosses to a Ray worker)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"config": self.config.to_dict(),
                                                                         "epsilons": list(self.epsilons),
                                                                         "after": list(self.after)}

    @classmethod
    def from_dict(cls, data: dict) -> Trial:
        return cls(**data | {"config": TrainConfig.from_dict(data["config"]), "epsilons": tuple(data["epsilons"]),
                             "after": tuple(data["after"])})


@dataclass(frozen=True)
class Sweep:
    name: str
    trials: tuple[Trial, ...]
    source: str = ""


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep file; ``SweepError`` names the file and the field of anything wrong with it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise SweepError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SweepError(f"{path}: not valid TOML ({err})") from None
    try:
        return expand(data, default_name=path.stem, source=str(path))
    except SweepError as err:
        raise SweepError(f"{path}: {err}") from None


def expand(data: dict, *, default_name: str = "sweep", source: str = "") -> Sweep:
    """Expand a parsed sweep file into its trials (see the module's docstring for the format)."""
    _check_keys("the file", data, ("sweep", "grid", "role"))
    sweep = _table(data, "sweep")
    _check_keys("[sweep]", sweep, SWEEP_KEYS)
    grid = _table(data, "grid")
    _check_keys("[grid]", grid, CONFIG_KEYS)
    roles = data.get("role", [])
    if not isinstance(roles, list) or not roles or not all(isinstance(r, dict) for r in roles):
        raise SweepError("no [[role]] tables: give at least one (e.g. [[role]] name = \"plain\")")
    options = _options(sweep)
    axes = {key: _values(f"grid.{key}", value) for key, value in grid.items()}
    trials, names = [], [_role_name(i, role) for i, role in enumerate(roles)]
    if len(set(names)) != len(names):
        raise SweepError(f"role names repeat: {names}")
    if options["reference"] is not None and options["reference"] not in names:
        raise SweepError(f"sweep.reference {options['reference']!r} is not a role; roles: {', '.join(names)}")
    for name, role in zip(names, roles):
        _check_keys(f"role {name!r}", role, ("name",) + CONFIG_KEYS)
        role_axes = axes | {k: _values(f"role {name!r}: {k}", v) for k, v in role.items() if k != "name"}
        trials += _role_trials(name, role_axes, options)
    if len(trials) > MAX_TRIALS:
        raise SweepError(f"{len(trials)} trials: more than {MAX_TRIALS}; split the sweep")
    _check_unique(trials)
    return Sweep(str(sweep.get("name", default_name)), _link(trials, options), source)


def _table(data: dict, key: str) -> dict:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise SweepError(f"[{key}] must be a table")
    return table


def _check_keys(where: str, table: dict, valid: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise SweepError(f"{where}: unknown field {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")


def _values(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SweepError(f"{where} is an empty list: give at least one value")
    if any(isinstance(v, (list, dict)) for v in values):
        raise SweepError(f"{where}: a value must be a number, a string or true/false, got {value!r}")
    if len(set(map(repr, values))) != len(values):
        raise SweepError(f"{where} repeats a value: {value!r}")
    return values


def _role_name(i: int, role: dict) -> str:
    name = role.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\ \t"):
        raise SweepError(f"role #{i + 1}: name must be a non-empty string without spaces or slashes, got {name!r}")
    return name


def _options(sweep: dict) -> dict:
    n_eval, steps = sweep.get("n_eval", 256), sweep.get("pgd_steps", 20)
    for key, value in (("n_eval", n_eval), ("pgd_steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "n_eval" else 1):
            raise SweepError(f"sweep.{key} must be an integer >= {0 if key == 'n_eval' else 1}, got {value!r}")
    epsilons = _values("sweep.epsilons", sweep.get("epsilons", list(DEFAULT_EPSILONS)))
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) and 0 < e <= 1
               for e in epsilons):
        raise SweepError(f"sweep.epsilons must be numbers in (0, 1], got {epsilons!r}")
    reference = sweep.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise SweepError(f"sweep.reference must be a role's name, got {reference!r}")
    return {"n_eval": n_eval, "pgd_steps": steps, "epsilons": tuple(float(e) for e in sorted(epsilons)),
            "reference": reference}


def _role_trials(role: str, axes: dict, options: dict) -> list[Trial]:
    keys = list(axes)
    varying = [k for k in keys if len(axes[k]) > 1]
    trials = []
    for values in itertools.product(*(axes[k] for k in keys)):
        fields_ = dict(zip(keys, values))
        name = "-".join([role] + [f"{ABBREVIATIONS.get(k, k)}{_short(fields_[k])}" for k in varying])
        trials.append(Trial(name=name, role=role, config=_config(name, fields_), n_eval=options["n_eval"],
                            epsilons=options["epsilons"], pgd_steps=options["pgd_steps"]))
    return trials


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _config(name: str, values: dict) -> TrainConfig:
    recipe = values.pop("recipe", "authors")
    if recipe not in RECIPES:
        raise SweepError(f"trial {name!r}: unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    own = {k: v for k, v in values.items() if k in RECIPES[recipe]}  # an explicit init/bn_scale/adam_eps wins
    for key in FLOAT_KEYS:  # TOML's 110 is λ 110.0: the same model, and the same id, as the CLI's
        if isinstance(values.get(key), int) and not isinstance(values[key], bool):
            values[key] = float(values[key])
    try:
        return TrainConfig(**values | {k: v for k, v in RECIPES[recipe].items() if k not in own})
    except (TypeError, ValueError) as err:
        raise SweepError(f"trial {name!r}: {err}") from None


def _check_unique(trials: list[Trial]) -> None:
    seen: dict[str, str] = {}
    for trial in trials:
        if trial.id in seen:
            raise SweepError(f"trials {seen[trial.id]!r} and {trial.name!r} are the same model ({trial.id})")
        seen[trial.id] = trial.name


def _link(trials: list[Trial], options: dict) -> tuple[Trial, ...]:
    """Each trial with its reference (the first trial of the reference role on its dataset) and what it waits for."""
    if options["reference"] is None or options["n_eval"] == 0:
        return tuple(trials)
    first = {}
    for trial in trials:
        if trial.role == options["reference"]:
            first.setdefault(trial.config.dataset, trial.name)
    linked = []
    for trial in trials:
        ref = first.get(trial.config.dataset)
        if ref is not None and ref != trial.name:
            trial = replace(trial, reference=ref, after=(ref,))
        linked.append(trial)
    return tuple(linked)


def stages(trials: tuple[Trial, ...] | list[Trial]) -> list[list[Trial]]:
    """The trials in waves: each wave holds the trials whose ``after`` all ran in earlier waves (file order kept)."""
    by_name = {t.name: t for t in trials}
    missing = sorted({a for t in trials for a in t.after} - set(by_name))
    if missing:
        raise SweepError(f"trials wait for trials that are not in the sweep: {missing}")
    done: set[str] = set()
    waves, left = [], list(trials)
    while left:
        wave = [t for t in left if set(t.after) <= done]
        if not wave:
            raise SweepError(f"trials wait for each other in a circle: {[t.name for t in left]}")
        waves.append(wave)
        done |= {t.name for t in wave}
        left = [t for t in left if t.name not in done]
    return waves
