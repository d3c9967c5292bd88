"""The Python DSL: `tetherfile.py` builds the same node tree a `tether.yaml` parses into."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from tether.spec.nodes import Entry, Node, python_node
from tether.structs import struct

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The tetherfile.py being loaded, so lines are taken from its frames even through helpers.
loading_file: ContextVar[Path | None] = ContextVar("tether_loading_file", default=None)


def caller_line() -> int | None:
    """The line in the spec file (or else the first caller outside tether) making this call."""
    target = loading_file.get()
    frame = sys._getframe(1)
    fallback: int | None = None
    while frame is not None:
        filename = Path(frame.f_code.co_filename)
        if target is not None and filename == target:
            return frame.f_lineno
        if fallback is None and not _inside_tether(filename):
            fallback = frame.f_lineno
            if target is None:
                break
        frame = frame.f_back  # type: ignore[assignment]
    return fallback


def _inside_tether(filename: Path) -> bool:
    try:
        filename.resolve().relative_to(_PACKAGE_DIR)
    except (ValueError, OSError):
        return False
    return True


@struct(frozen=True)
class StageDecl:
    """A stage as written in the DSL; validated later, with the YAML rules."""

    name: str
    fields: Mapping[str, Any]
    line: int | None
    kind: str = "stage"
    over: Any = None

    def to_node(self) -> Node:
        """The stage's node, shaped like the YAML it stands for."""
        body = python_node(dict(self.fields), self.line)
        if self.kind == "foreach":
            entries = (
                Entry("foreach", self.line, python_node(self.over, self.line)),
                Entry("do", self.line, body),
            )
            return Node("map", self.line, entries=entries)
        if self.kind == "matrix":
            matrix = Entry("matrix", self.line, python_node(self.over, self.line))
            return Node("map", self.line, entries=(matrix, *body.entries))
        return body


def stage(name: str, **fields: Any) -> StageDecl:
    """Declare a stage; `fields` are the keys of a `tether.yaml` stage."""
    _check_name(name)
    return StageDecl(name, fields, caller_line())


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a stage name must be a string, not {type(name).__name__}")


class Pipeline:
    """The pipeline a `tetherfile.py` declares in its module-level `pipeline` variable."""

    def __init__(
        self, metrics: Mapping[str, Mapping[str, Any]] | None = None, version: int | None = None
    ) -> None:
        self.metrics = metrics
        self.version = version
        self.stages: list[StageDecl] = []
        self.line = caller_line()
        self._metric_lines: dict[str, int | None] = {}
        self._data: dict[str, tuple[dict[str, Any], int | None]] = {}

    def data(self, name: str, source: str, path: str, *, subset: Mapping[str, Any] | None = None,
             prepare: str | None = None) -> None:
        """Declare data source `name`: `source` fetched, pinned and put at `path` (see
        docs/spec.md, `data:`)."""
        body: dict[str, Any] = {"source": source, "path": path}
        if subset is not None:
            body["subset"] = dict(subset)
        if prepare is not None:
            body["prepare"] = prepare
        self._data[name] = (body, caller_line())

    def add(self, *stages: StageDecl) -> None:
        """Add stages; declaration order is kept."""
        for declared in stages:
            if not isinstance(declared, StageDecl):
                raise TypeError(f"add() takes stage(...) results, not {type(declared).__name__}")
            self.stages.append(declared)

    def foreach(self, name: str, items: Sequence[Any] | Mapping[str, Any], **fields: Any) -> None:
        """Add one stage per item, named `name@item` (or `name@key`); `${item}` in fields."""
        _check_name(name)
        self.stages.append(StageDecl(name, fields, caller_line(), "foreach", items))

    def matrix(self, name: str, axes: Mapping[str, Sequence[Any]], **fields: Any) -> None:
        """Add one stage per combination of `axes`; `${item.AXIS}` in fields."""
        _check_name(name)
        self.stages.append(StageDecl(name, fields, caller_line(), "matrix", axes))

    def metric(
        self, name: str, direction: str, tolerance: float | str = 0, *,
        warn: float | str | None = None, gate: bool = True, allow_missing: bool = False,
    ) -> None:
        """Declare how metric `name` is judged: direction min or max, a tolerance, and
        for `tether gate` a warning band, whether it gates, and whether it may be missing."""
        rule: dict[str, Any] = {"direction": direction, "tolerance": tolerance}
        if warn is not None:
            rule["warn"] = warn
        if not gate:
            rule["gate"] = False
        if allow_missing:
            rule["allow_missing"] = True
        self.metrics = {**(self.metrics or {}), name: rule}
        self._metric_lines[name] = caller_line()

    def to_node(self) -> Node:
        """The document node, shaped like the YAML this pipeline stands for."""
        entries: list[Entry] = []
        if self.version is not None:
            entries.append(Entry("version", self.line, python_node(self.version, self.line)))
        stage_entries = tuple(Entry(s.name, s.line, s.to_node()) for s in self.stages)
        entries.append(Entry("stages", self.line, Node("map", self.line, entries=stage_entries)))
        if self.metrics is not None:
            if isinstance(self.metrics, Mapping):
                rules = tuple(
                    Entry(str(name), line, python_node(rule, line))
                    for name, rule in self.metrics.items()
                    for line in [self._metric_lines.get(str(name), self.line)]
                )
                metrics = Node("map", self.line, entries=rules)
            else:
                metrics = python_node(self.metrics, self.line)
            entries.append(Entry("metrics", self.line, metrics))
        if self._data:
            sources = tuple(Entry(name, line, python_node(body, line))
                            for name, (body, line) in self._data.items())
            entries.append(Entry("data", self.line, Node("map", self.line, entries=sources)))
        return Node("map", self.line, entries=tuple(entries))
