"""Readers for single spec fields, turning bad values into located problems."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from tether.errors import close_matches
from tether.spec.model import ParamRef
from tether.spec.nodes import Entry, Node, Problems, describe
from tether.spec.values import TAG, describe_value, normalize_path

T = TypeVar("T")

DEFAULT_PARAMS_FILE = "params.yaml"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARAM_KEY = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


def check_keys(
    node: Node, path: str, known: Sequence[str], problems: Problems, suggest: Sequence[str] = ()
) -> dict[str, Entry]:
    """The first entry of each known key; unknown and duplicate keys are reported."""
    found: dict[str, Entry] = {}
    for entry in node.entries:
        where = f"{path}.{entry.key}" if path else entry.key
        if entry.key in found:
            problems.add(
                entry.line,
                where,
                f"duplicate key {entry.key!r} (first at line {found[entry.key].line})",
            )
        elif entry.key in known:
            found[entry.key] = entry
        else:
            close = close_matches(entry.key, [*known, *suggest], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            problems.add(entry.line, where, f"unknown key {entry.key!r}{hint}")
    return found


class FieldReader:
    """Reads stage fields, turning parser ValueErrors into located problems."""

    def __init__(self, fields: dict[str, Entry], path: str, problems: Problems) -> None:
        self.fields, self.path, self.problems = fields, path, problems

    def get(
        self,
        key: str,
        default: T,
        parser: Callable[[object], T],
    ) -> T:
        entry = self.fields.get(key)
        if entry is None:
            return default
        if entry.node.kind != "scalar":
            return self._parse(entry.node, key, parser, default, list_value=True)
        return self._parse(entry.node, key, parser, default)

    def each(self, key: str, parser: Callable[[object], T], single: bool = True) -> list[T]:
        entry = self.fields.get(key)
        if entry is None:
            return []
        node = entry.node
        if node.kind == "scalar" and single and isinstance(node.scalar, str):
            items: Sequence[Node] = (node,)
        elif node.kind == "list":
            items = node.items
        else:
            self.problems.add(
                node.line, f"{self.path}.{key}", f"expected a list, found {describe(node)}"
            )
            return []
        values = []
        for item in items:
            if item.kind != "scalar":
                self.problems.add(
                    item.line,
                    f"{self.path}.{key}",
                    f"expected a list of scalars, found {describe(item)} in it",
                )
                continue
            try:
                values.append(parser(item.scalar))
            except ValueError as exc:
                self.problems.add(item.line, f"{self.path}.{key}", str(exc))
        return values

    def _parse(
        self,
        node: Node,
        key: str,
        parser: Callable[[object], T],
        default: T,
        list_value: bool = False,
    ) -> T:
        try:
            return parser(node.to_python() if list_value else node.scalar)
        except ValueError as exc:
            self.problems.add(node.line, f"{self.path}.{key}", str(exc))
            return default


def as_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {what} (a string), found {describe_value(value)}")
    return value


def as_commands(value: object) -> tuple[str, ...]:
    commands = value if isinstance(value, list) else [value]
    if not commands or not all(isinstance(c, str) and c.strip() for c in commands):
        raise ValueError(
            f"expected a non-empty command or list of commands, found {describe_value(value)}"
        )
    return tuple(str(c) for c in commands)


def as_tag(value: object) -> str:
    """A worker tag a stage requires (`require: [gpu, a100]`)."""
    text = as_text(value, "a worker tag such as gpu")
    if not TAG.fullmatch(text):
        raise ValueError(f"expected a worker tag (letters, digits and _ . : = + -, such as gpu "
                         f"or cuda=12), found {text!r}")
    return text


def unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def as_param(value: object, wdir: str) -> ParamRef:
    text = as_text(value, "a params key like 'train.lr' or 'FILE:KEY'")
    file, _, key = text.rpartition(":") if ":" in text else ("", "", text)
    if not _PARAM_KEY.fullmatch(key):
        raise ValueError(f"expected a params key like 'train.lr' or 'FILE:KEY', found {text!r}")
    return ParamRef(normalize_path(file or DEFAULT_PARAMS_FILE, wdir), key)


def read_env(node: Node, path: str, problems: Problems) -> dict[str, str]:
    if node.kind != "map":
        problems.add(node.line, path, f"expected a mapping NAME: value, found {describe(node)}")
        return {}
    env: dict[str, str] = {}
    for key, entry in check_keys(node, path, [e.key for e in node.entries], problems).items():
        value = entry.node.scalar
        if not _ENV_NAME.fullmatch(key):
            problems.add(entry.line, f"{path}.{key}", "not a valid environment variable name")
        elif entry.node.kind != "scalar" or value is None:
            problems.add(
                entry.node.line,
                f"{path}.{key}",
                f"expected a string or number, found {describe(entry.node)}",
            )
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        else:
            env[key] = str(value)
    return env


def as_integer(value: object, low: int, high: int | None) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise ValueError(f"expected {wanted}, found {describe_value(value)}")
    return value
