"""Every command has --help text and appears, up to date, in docs/cli.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tether.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_help_and_is_in_the_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    env = {**os.environ, "COLUMNS": "80"}
    for name in COMMANDS:
        proc = subprocess.run(
            [sys.executable, "-m", "tether", name, "--help"],
            capture_output=True, text=True, env=env,
        )
        assert proc.returncode == 0, (name, proc.stderr)
        assert f"usage: tether {name}" in proc.stdout
        assert f"## tether {name}\n" in reference, f"{name} missing from docs/cli.md"


def test_reference_is_generated_from_current_help() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli_reference.py"), "--check"],
        env=env,
    )
    assert proc.returncode == 0, "docs/cli.md is stale: run `make docs`"
