"""YAML read from a project is checked before it is built into Python values.

An alias that contains itself (`a: &x [*x]`) would make any walk over the value
recurse forever, and nested aliases ("billion laughs") expand a few lines into
billions of items. `compose` refuses both with a `yaml.MarkedYAMLError` at the
offending line, so callers report them like any other YAML error (file:line).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 1_000_000  # scalars, lists and mappings after expanding aliases
MAX_DEPTH = 200  # lists and mappings nested in each other


class YamlGuardError(yaml.MarkedYAMLError):
    """The document is recursive, too deep or expands to too much; nothing is built."""


def _refuse(problem: str, node: yaml.Node) -> YamlGuardError:
    return YamlGuardError(problem=problem, problem_mark=node.start_mark)


def check_node(root: yaml.Node) -> None:
    """Refuse a composed document that is recursive, too deep, or too big once expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _refuse("a YAML alias refers to a node that contains it (a recursive "
                          "alias): it would expand forever", node)
        if depth > MAX_DEPTH:
            raise _refuse(f"nested more than {MAX_DEPTH} levels deep", node)
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            open_nodes.add(key)
            children: list[Any] = (node.value if isinstance(node, yaml.SequenceNode)
                                   else [part for pair in node.value for part in pair])
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    raise _refuse(f"expands to more than {MAX_NODES:,} values through "
                                  "aliases (a \"billion laughs\" document?)", node)
            open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def compose(text: str) -> yaml.Node | None:
    """The node tree of a YAML document (safe loader), checked by `check_node`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise YamlGuardError(problem=f"nested more than {MAX_DEPTH} levels deep") from None
    if root is not None:
        check_node(root)
    return root


_BOOL_TAG = "tag:yaml.org,2002:bool"


class TextKeyLoader(yaml.SafeLoader):
    """The safe loader, but a plain mapping key that YAML 1.1 reads as a boolean (`on`,
    `off`, `yes`, `no`, `true`...) stays the text it is: in a config file `notify: {on:
    [...]}` names the key `on`, never `True`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[str, yaml.Mark] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag == _BOOL_TAG and not key.style:
                key.tag = "tag:yaml.org,2002:str"
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                if key.value in seen:  # YAML keeps the last silently: a section lost
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r} (first at line "
                        f"{seen[key.value].line + 1})", key.start_mark)
                seen[key.value] = key.start_mark
        return super().construct_mapping(node, deep)


def safe_load(text: str, *, text_keys: bool = False) -> Any:
    """`yaml.safe_load`, refusing recursive, too deep or exploding documents; with
    `text_keys`, boolean-looking mapping keys stay text (`TextKeyLoader`)."""
    loader = (TextKeyLoader if text_keys else yaml.SafeLoader)(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlGuardError(problem=f"nested more than {MAX_DEPTH} levels deep") from None
        if root is None:
            return None
        check_node(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()
