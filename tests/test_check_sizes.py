"""scripts/check_sizes.py: the size limits `make test` holds src/ to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_sizes.py"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_long_functions_and_modules_are_named(tmp_path: Path) -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(80))
    (tmp_path / "long.py").write_text(
        f"class Box:\n    @staticmethod\n    def fill() -> None:\n{body}"
        f"\n\ndef short() -> None:\n    pass\n"
    )
    proc = check("--max-module", "50", str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert f"{tmp_path / 'long.py'}:1: module has 87 lines (limit 50)" in lines
    # Decorators count: the unit starts where its first decorator does.
    assert f"{tmp_path / 'long.py'}:2: Box.fill has 82 lines (limit 80)" in lines
    assert not any("short" in line for line in lines)


def test_the_source_tree_is_within_the_limits() -> None:
    proc = check()
    assert proc.returncode == 0, proc.stdout
