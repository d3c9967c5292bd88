"""A spec document as a tree of nodes that remember their line, and the problem collector."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from tether.spec.values import describe_value
from tether.spec.yamlguard import compose
from tether.structs import field, struct

NodeKind = Literal["scalar", "list", "map"]


@struct(frozen=True)
class Entry:
    """One `key: value` pair of a mapping node; duplicates are kept for the validator."""

    key: str
    line: int | None
    node: Node


@struct(frozen=True)
class Node:
    """A scalar, a list of nodes or a mapping of entries, with the line it starts on."""

    kind: NodeKind
    line: int | None
    scalar: object = None
    items: tuple[Node, ...] = ()
    entries: tuple[Entry, ...] = ()

    def get(self, key: str) -> Entry | None:
        """The first entry named `key` of a mapping node."""
        return next((e for e in self.entries if e.key == key), None)

    def to_python(self) -> object:
        """The plain Python value this node holds."""
        if self.kind == "list":
            return [item.to_python() for item in self.items]
        if self.kind == "map":
            return {e.key: e.node.to_python() for e in self.entries}
        return self.scalar


def describe(node: Node) -> str:
    """How a found value is named in a problem: `'abc'`, `3`, `null`, `a list`."""
    if node.kind == "list":
        return "a list"
    if node.kind == "map":
        return "a mapping"
    return describe_value(node.scalar)


@struct
class Problems:
    """Collects located problems as `FILE:LINE: PATH: MESSAGE` lines, without duplicates."""

    label: str
    lines: list[str] = field(default_factory=list)
    reported: int = 0
    _order: dict[str, int] = field(default_factory=dict)

    def add(self, line: int | None, path: str, message: str) -> None:
        """Record one problem; `reported` counts every call, duplicates included."""
        self.reported += 1
        where = f"{self.label}:{line}" if line else self.label
        text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
        if text not in self._order:
            self._order[text] = line or 0
            self.lines.append(text)

    def in_file_order(self) -> list[str]:
        """The problems sorted by line (stable), as a reader of the file meets them."""
        return sorted(self.lines, key=self._order.__getitem__)


def python_node(value: object, line: int | None) -> Node:
    """A node tree for a Python value; every node gets `line` (the DSL's call site)."""
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):
        entries = tuple(Entry(_key_text(k), line, python_node(v, line)) for k, v in value.items())
        return Node("map", line, entries=entries)
    if isinstance(value, list | tuple):
        return Node("list", line, items=tuple(python_node(v, line) for v in value))
    if isinstance(value, os.PathLike):
        return Node("scalar", line, scalar=os.fspath(value).replace(os.sep, "/"))
    return Node("scalar", line, scalar=value)


def _key_text(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def yaml_node(text: str, problems: Problems) -> Node | None:
    """Parse YAML text into a node tree; syntax errors raise `yaml.MarkedYAMLError`."""
    root = compose(text)
    if root is None:
        return None
    return _YamlConverter(problems).convert(root)


class _YamlConverter:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            return Node("map", line, entries=tuple(self._entries(node)))
        if isinstance(node, SequenceNode):
            return Node("list", line, items=tuple(self.convert(item) for item in node.value))
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problems.add(line, "", f"cannot read this value: {exc.problem}")
            value = None
        return Node("scalar", line, scalar=value)

    def _entries(self, node: MappingNode) -> list[Entry]:
        own: list[Entry] = []
        merged: list[Entry] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.extend(self._merged(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                line = key_node.start_mark.line + 1
                self.problems.add(line, "", "mapping keys must be plain strings")
                continue
            own.append(
                Entry(str(key_node.value), key_node.start_mark.line + 1, self.convert(value_node))
            )
        taken = {e.key for e in own}
        for entry in merged:
            if entry.key not in taken:
                taken.add(entry.key)
                own.append(entry)
        return own

    def _merged(self, value_node: yaml.Node) -> list[Entry]:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        entries: list[Entry] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                line = source.start_mark.line + 1
                self.problems.add(line, "", "a '<<' merge key needs a mapping or a list of them")
                continue
            entries.extend(self._entries(source))
        return entries
