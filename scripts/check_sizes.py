"""Fail when a module of src/ is over 400 lines or a function over 80.

Small units are easier to read and to test; a module past the limit is usually
two ideas, a function past it several steps worth naming. Run by `make test`.

    python scripts/check_sizes.py [--max-module 400] [--max-function 80] [ROOT ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


Function = ast.FunctionDef | ast.AsyncFunctionDef


def functions(tree: ast.AST) -> Iterator[tuple[str, Function]]:
    """Every function and method in `tree`, nested ones too, with its dotted name."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, Function]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def problems(path: Path, max_module: int, max_function: int) -> list[str]:
    """What in one module is over the limits, as `path:line: message` lines."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > max_module:
        found.append(f"{path}:1: module has {lines} lines (limit {max_module})")
    for name, node in functions(ast.parse(text, filename=str(path))):
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = (node.end_lineno or node.lineno) - start + 1
        if length > max_function:
            found.append(f"{path}:{start}: {name} has {length} lines (limit {max_function})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[REPO_ROOT / "src"])
    parser.add_argument("--max-module", type=int, default=400)
    parser.add_argument("--max-function", type=int, default=80)
    args = parser.parse_args(argv)
    found = []
    for root in args.roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            found += problems(path, args.max_module, args.max_function)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
