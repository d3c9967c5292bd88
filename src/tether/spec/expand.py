"""Expansion of `foreach`/`do` and `matrix` templates into stages, with `${...}` substitution."""

from __future__ import annotations

import itertools
import re

from tether.spec.nodes import Entry, Node, Problems, describe
from tether.spec.values import format_scalar
from tether.structs import struct

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_EXPRESSION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\s*")
_NAME_SUFFIX = re.compile(r"[A-Za-z0-9_.-]+")
_AXIS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@struct(frozen=True)
class StageBody:
    """One stage to validate: its name, its fields, and where its fields sit in the file."""

    name: str
    body: Node
    line: int | None
    path: str


def expand(entry: Entry, problems: Problems) -> list[StageBody]:
    """The stages a `stages` entry declares: itself, or one per foreach item / matrix point."""
    node = entry.node
    path = f"stages.{entry.key}"
    if node.kind != "map":
        return [StageBody(entry.key, node, entry.line, path)]
    foreach, do, matrix = node.get("foreach"), node.get("do"), node.get("matrix")
    if foreach and matrix:
        problems.add(matrix.line, path, "use either 'foreach' or 'matrix', not both")
        return []
    if foreach:
        return _expand_foreach(entry, foreach, do, problems)
    if do:
        problems.add(do.line, f"{path}.do", "'do' needs a 'foreach' next to it")
        return []
    if matrix:
        return _expand_matrix(entry, matrix, problems)
    return [StageBody(entry.key, node, entry.line, path)]


def _expand_foreach(
    entry: Entry, foreach: Entry, do: Entry | None, problems: Problems
) -> list[StageBody]:
    path = f"stages.{entry.key}"
    for other in entry.node.entries:
        if other.key not in ("foreach", "do"):
            problems.add(
                other.line, f"{path}.{other.key}", f"with 'foreach', put {other.key!r} under 'do'"
            )
    if do is None:
        problems.add(foreach.line, path, "'foreach' needs a 'do' with the stage fields")
        return []
    if do.node.kind != "map":
        problems.add(
            do.node.line,
            f"{path}.do",
            f"expected a mapping of stage fields, found {describe(do.node)}",
        )
        return []
    items = foreach.node
    points: list[tuple[str, Node, dict[str, Node]]] = []
    if items.kind == "list" and items.items:
        for index, item in enumerate(items.items):
            suffix = format_scalar(item.scalar) if item.kind == "scalar" else str(index)
            points.append((suffix, item, {"item": item}))
    elif items.kind == "map" and items.entries:
        for pair in items.entries:
            key_node = Node("scalar", pair.line, scalar=pair.key)
            points.append((pair.key, pair.node, {"item": pair.node, "key": key_node}))
    else:
        problems.add(
            items.line,
            f"{path}.foreach",
            f"expected a non-empty list or mapping, found {describe(items)}",
        )
        return []
    return _generate(entry, do.node, f"{path}.do", f"{path}.foreach", points, problems)


def _expand_matrix(entry: Entry, matrix: Entry, problems: Problems) -> list[StageBody]:
    path = f"stages.{entry.key}.matrix"
    axes = matrix.node
    if axes.kind != "map" or not axes.entries:
        problems.add(
            axes.line, path, f"expected a mapping of axis -> list of values, found {describe(axes)}"
        )
        return []
    columns: list[list[tuple[str, Node]]] = []
    for axis in axes.entries:
        values = axis.node
        if not _AXIS.fullmatch(axis.key):
            problems.add(
                axis.line,
                f"{path}.{axis.key}",
                "axis names may only contain letters, digits and '_'",
            )
        if values.kind != "list" or not values.items:
            problems.add(
                values.line,
                f"{path}.{axis.key}",
                f"expected a non-empty list of values, found {describe(values)}",
            )
        elif any(v.kind != "scalar" for v in values.items):
            problems.add(
                values.line,
                f"{path}.{axis.key}",
                "matrix values must be scalars (strings, numbers, booleans)",
            )
        else:
            columns.append([(axis.key, v) for v in values.items])
    if len(columns) != len(axes.entries):
        return []
    body = Node(
        "map", entry.node.line, entries=tuple(e for e in entry.node.entries if e.key != "matrix")
    )
    points = []
    for combo in itertools.product(*columns):
        item = Node("map", matrix.line, entries=tuple(Entry(k, v.line, v) for k, v in combo))
        suffix = "-".join(format_scalar(v.scalar) for _, v in combo)
        points.append((suffix, item, {"item": item}))
    return _generate(entry, body, f"stages.{entry.key}", path, points, problems)


def _generate(
    entry: Entry,
    body: Node,
    path: str,
    name_path: str,
    points: list[tuple[str, Node, dict[str, Node]]],
    problems: Problems,
) -> list[StageBody]:
    stages = []
    for suffix, item, variables in points:
        name = f"{entry.key}@{suffix}"
        if not _NAME_SUFFIX.fullmatch(suffix):
            problems.add(
                item.line,
                name_path,
                f"generated stage name {name!r} is not valid: values used in names "
                "may only contain letters, digits, '_', '.' and '-' "
                "(a mapping foreach lets you choose the names)",
            )
            continue
        before = problems.reported
        expanded = substitute(body, variables, path, problems)
        if problems.reported == before:
            stages.append(StageBody(name, expanded, entry.line, path))
    return stages


def substitute(node: Node, variables: dict[str, Node], path: str, problems: Problems) -> Node:
    """`node` with `${item}`, `${item.field}` and `${key}` replaced in every string value."""
    if node.kind == "map":
        entries = tuple(
            Entry(e.key, e.line, substitute(e.node, variables, f"{path}.{e.key}", problems))
            for e in node.entries
        )
        return Node("map", node.line, entries=entries)
    if node.kind == "list":
        items = tuple(substitute(i, variables, path, problems) for i in node.items)
        return Node("list", node.line, items=items)
    if not isinstance(node.scalar, str):
        return node
    text = node.scalar
    whole = _REFERENCE.fullmatch(text)
    if whole and whole.group(1) is not None:
        value = _resolve(whole.group(1), variables, node, path, problems)
        if value is None:
            return node
        return Node(value.kind, node.line, value.scalar, value.items, value.entries)

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        value = _resolve(match.group(1), variables, node, path, problems)
        if value is None:
            return match.group(0)
        if value.kind != "scalar":
            problems.add(
                node.line,
                path,
                f"cannot insert {describe(value)} into a string (${{{match.group(1)}}})",
            )
            return match.group(0)
        return format_scalar(value.scalar)

    return Node("scalar", node.line, scalar=_REFERENCE.sub(replace, text))


def _resolve(
    expression: str, variables: dict[str, Node], node: Node, path: str, problems: Problems
) -> Node | None:
    parsed = _EXPRESSION.fullmatch(expression)
    available = ", ".join(f"${{{v}}}" for v in variables)
    if parsed is None or parsed.group(1) not in variables:
        problems.add(
            node.line, path, f"unknown variable ${{{expression}}} (available here: {available})"
        )
        return None
    value = variables[parsed.group(1)]
    for part in filter(None, parsed.group(2).split(".")):
        found: Node | None = None
        if value.kind == "map":
            entry = value.get(part)
            found = entry.node if entry else None
        elif value.kind == "list" and part.isdigit() and int(part) < len(value.items):
            found = value.items[int(part)]
        if found is None:
            problems.add(
                node.line, path, f"${{{expression}}}: {describe(value)} has no field {part!r}"
            )
            return None
        value = found
    return value
