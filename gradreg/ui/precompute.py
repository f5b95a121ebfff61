"""Build the zoo's precomputed lessons: run every page of ``app.py`` at its default settings, and every lesson preset
of Home (``presets.PRESETS``), through Streamlit's AppTest while ``stored.recording()`` keeps what each ``@stored``
computation returns; then write them beside the zoo (``gradreg.lessons.precomputed``).

``python -m gradreg.ui.precompute [--zoo DIR]`` (what ``python -m gradreg lessons`` and, at its end, ``python -m
gradreg zoo`` run: the command line cannot import Streamlit, so it starts this in a child process). Models trained
by the user are kept out (an empty ``$GRADREG_CHECKPOINT_DIR``), so the defaults are the zoo's own.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from gradreg.lessons import precomputed
from gradreg.training.places import zoo_dir

APP = Path(__file__).resolve().parent.parent.parent / "app.py"
log = logging.getLogger(__name__)  # one line per view recorded (``main`` shows them)


def pages(app: Path = APP) -> list[tuple[str, str]]:
    """(path, title) of every page ``app.py`` registers, in its order."""
    return re.findall(r'st\.Page\("([^"]+)", title="([^"]+)"', app.read_text())


def views(app: Path = APP) -> list[tuple[str, dict]]:
    """(page path, URL parameters) of what a first visitor sees: every page as it opens, every lesson preset, and
    each first question the quiz may draw (``quiz.FIRST_SEEDS``)."""
    from gradreg.lessons.quiz import FIRST_SEEDS
    from gradreg.ui.presets import PRESETS

    return ([(path, {}) for path, _ in pages(app)] + [(f"pages/{p.page}.py", dict(p.params)) for p in PRESETS]
            + [("pages/quiz.py", {"quiz.seed": str(seed)}) for seed in range(FIRST_SEEDS)])


def record(app: Path = APP) -> dict:
    """Run every view of ``views`` (a failing page raises) and return the recorded call key → value."""
    from streamlit.testing.v1 import AppTest

    from gradreg.ui import stored

    # Outside a server, every run logs "missing ScriptRunContext" from the main thread: nothing about the views.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").disabled = True

    with stored.recording() as values:
        for path, params in views(app):
            began, before = time.perf_counter(), len(values)
            test = AppTest.from_file(str(app), default_timeout=3600)
            test.run()
            test.switch_page(path)
            test.query_params.update(params)
            test.run()
            if test.exception:
                raise RuntimeError(f"{path} {params or ''} raised: {[e.value for e in test.exception]}")
            link = "&".join(f"{k}={v if isinstance(v, str) else ','.join(v)}" for k, v in params.items())
            log.info(f"{path}{'?' + link if link else ''}: {len(values) - before} new views in "
                f"{time.perf_counter() - began:.1f} s")
        for name, why in stored.skipped().items():
            log.warning(f"not stored: {name} ({why})")
        return dict(values)


def build(zoo: Path, app: Path = APP) -> Path:
    """Record the views of the zoo in ``zoo`` and write them to ``zoo / precomputed.FILE``; returns its path."""
    if not app.is_file():
        raise FileNotFoundError(f"{app} is missing: the lessons are recorded from the dashboard's pages (a checkout "
                                "of the repository has them)")
    if not (zoo / "manifest.json").is_file():
        raise FileNotFoundError(f"no zoo in {zoo} (manifest.json missing): build it with python -m gradreg zoo")
    with tempfile.TemporaryDirectory() as user:
        os.environ.update({"GRADREG_ZOO_DIR": str(zoo), "GRADREG_CHECKPOINT_DIR": user,
                           "GRADREG_MAX_WAIT_SECONDS": "86400"})  # a slow machine still records every default
        os.chdir(app.parent)
        values = record(app)
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path = precomputed.write(zoo / precomputed.FILE, values, precomputed.fingerprint(zoo), built=built)
    log.info(f"wrote {len(values)} views to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's notes on the gradients it switches on
    parser = argparse.ArgumentParser(prog="python -m gradreg.ui.precompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=None, help="the zoo's folder (default: $GRADREG_ZOO_DIR or checkpoints/)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.INFO, stream=sys.stdout)
    try:
        build(Path(args.zoo).resolve() if args.zoo else zoo_dir().resolve())
    except (FileNotFoundError, RuntimeError) as err:
        log.error(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
