"""Project guards: the README's commands are the ones CI runs; pins are a matching torch/torchvision pair."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks]


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_command = next(c for c in commands if c.endswith("python -m pytest"))
    assert test_command in (ROOT / ".ci" / "run").read_text()
    assert any(c.endswith("streamlit run app.py") and "pip install -r requirements.txt" in c for c in commands)


def test_requirements_pin_a_matching_torch_pair():
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.2"
    assert all(version for version in pins.values())


def test_streamlit_file_watcher_is_off():
    assert 'fileWatcherType = "none"' in (ROOT / ".streamlit" / "config.toml").read_text()
