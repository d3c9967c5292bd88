"""The README's front door: exactly two set-up commands, and the first one works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README has no quick-start code block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands() -> None:
    assert quick_start_commands() == ["make demo", "make test"]
    # The quick start is near the top.
    assert (ROOT / "README.md").read_text().index("## Quick start") < 2000


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "set -euo pipefail" in ci


@pytest.mark.skipif(not (Path(sys.prefix) / "bin" / "tether").exists(),
                    reason="tether is not installed in this interpreter's environment")
def test_make_demo_runs_the_example_and_shows_experiments() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")}
    env.pop("HOME", None)
    env["HOME"] = os.environ["HOME"]
    proc = subprocess.run(
        ["make", "demo", f"VENV={sys.prefix}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "== tether show" in out
    show = out.split("== tether show", 1)[1]
    assert "first" in show and "faster-lr" in show and "success" in show
    assert "test.acc" in show
    assert "prepare unchanged, skipped" in proc.stderr
    # ... then a change on a branch, gated and reported against the last main build.
    assert "== tether gate --against main" in out and "REGRESSED" in out
    assert "(tether gate exited 16)" in out
    report = out.split("== tether report --against main --md", 1)[1]
    assert "regressed" in report and "train.epochs" in report
