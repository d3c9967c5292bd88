"""Write docs/cli.md from the commands' own --help text (run: python scripts/gen_cli_reference.py).

tests/test_cli_reference.py fails when docs/cli.md is out of date, so the
reference can never drift from what `tether COMMAND --help` says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tether.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"


def render() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# tether command reference\n",
        "Generated from each command's `--help` by `scripts/gen_cli_reference.py`;",
        "do not edit by hand.\n",
        "```text",
        parser.format_help().rstrip(),
        "```\n",
    ]
    for name in COMMANDS:
        command = sub.choices.get(name)
        if command is None:
            continue
        parts += [f"## tether {name}\n", "```text", command.format_help().rstrip(), "```\n"]
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if TARGET.exists() and TARGET.read_text() == text else 1
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
