"""Readers for final-metrics files and step-metric series.

Final metrics come from JSON or YAML files and are flattened to dotted names
(`{"val": {"acc": 0.9}}` → `{"val.acc": 0.9}`). Step series come from JSON lines
(what `tether.log` writes), CSV/TSV, or a JSON/YAML list of objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether.errors import SpecError
from tether.layout import DEFAULT_PARAMS

_SCALARS = (int, float, bool, str, type(None))
_JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def flatten(data: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → dotted names; keeps scalars and lists of scalars.

    Lists holding mappings or lists are flattened by index (`per_class.0.f1`);
    dates become ISO strings; other values are dropped.
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, data, prefix)
    return flat


def flat_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A record's `{file: nested}` params as flat keys: `train.lr` for params.yaml,
    `file:train.lr` for other files (a file whose content is not a mapping has none)."""
    return {
        (key if file == DEFAULT_PARAMS else f"{file}:{key}"): value
        for file, content in params.items()
        if isinstance(content, Mapping)
        for key, value in flatten(content).items()
    }


def _flatten_into(flat: dict[str, Any], data: Mapping[Any, Any], prefix: str) -> None:
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        _flatten_value(flat, name, value)


def _flatten_value(flat: dict[str, Any], name: str, value: Any) -> None:
    if isinstance(value, _SCALARS):
        flat[name] = value
    elif isinstance(value, Mapping):
        _flatten_into(flat, value, name)
    elif isinstance(value, list | tuple):
        if all(isinstance(item, _SCALARS) for item in value):
            flat[name] = list(value)
        else:
            for index, item in enumerate(value):
                _flatten_value(flat, f"{name}.{index}", item)
    elif hasattr(value, "isoformat"):  # dates and times read from YAML
        flat[name] = value.isoformat()


# --------------------------------------------------------------------------- final metrics


def read_metrics_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML metrics file, flattened; {} if the file does not exist."""
    text = _read_text(path)
    if text is None:
        return {}
    data = _parse_document(path, text)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: expected a mapping of metric names to values, got {_kind(data)}")
    return flatten(data)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a metrics file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _parse_document(path: Path, text: str) -> Any:
    """Parse JSON or YAML by suffix; an unknown suffix tries JSON, then YAML."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _parse_json(path, text)
    if suffix in _YAML_SUFFIXES:
        return _parse_yaml(path, text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return _parse_yaml(path, text)


def _parse_json(path: Path, text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: invalid YAML: {problem}") from exc


def _kind(data: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(data), type(data).__name__)


# --------------------------------------------------------------------------- step series


def read_step_file(path: Path) -> list[dict[str, Any]]:
    """Read a step-metric series: JSON lines, CSV/TSV, or a JSON/YAML list; [] if missing.

    In JSON lines, blank lines are skipped and a truncated last line (a run killed
    mid-write) is dropped.
    """
    text = _read_text(path)
    if text is None:
        return []
    suffix = path.suffix.lower()
    if suffix in _JSON_LINES_SUFFIXES:
        return _read_json_lines(path, text)
    if suffix in _DELIMITERS:
        return _read_delimited(path, text, _DELIMITERS[suffix])
    if suffix not in {".json", *_YAML_SUFFIXES} and text.lstrip().startswith("{"):
        return _read_json_lines(path, text)
    return _rows_from_document(path, _parse_document(path, text))


def _read_json_lines(path: Path, text: str) -> list[dict[str, Any]]:
    rows = _parse_lines_at_once(text)
    if rows is None and not text.endswith("\n"):
        # A killed run can leave a partial last line; drop it and try again.
        rows = _parse_lines_at_once(text[: text.rfind("\n") + 1])
    if rows is None:
        rows = _parse_lines_one_by_one(path, text)
    for number, row in enumerate(rows, start=1):
        if type(row) is not dict:
            raise SpecError(f"{path}: line {number}: expected a JSON object, got {_kind(row)}")
    # Only a line holding a nested object has more than one "{": flatten only then.
    if text.count("{") > len(rows):
        return [flatten(row) for row in rows]
    return rows


def _parse_lines_at_once(text: str) -> list[Any] | None:
    """Parse JSON lines as one array (far faster than a parse per line); None if invalid."""
    stripped = text.rstrip()
    if not stripped:
        return []
    # JSON strings cannot hold raw newlines, so every newline separates two values.
    try:
        rows: list[Any] = json.loads(f"[{stripped.replace(chr(10), ',')}]")
    except json.JSONDecodeError:
        return None
    return rows


def _parse_lines_one_by_one(path: Path, text: str) -> list[Any]:
    lines = text.split("\n")
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    truncated_tail = not text.endswith("\n")
    rows = []
    for index, line in enumerate(lines[: last + 1]):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if index == last and truncated_tail:
                break  # the run was killed while writing this line
            raise SpecError(f"{path}:{index + 1}: invalid JSON line: {exc.msg}") from exc
    return rows


def _read_delimited(path: Path, text: str, delimiter: str) -> list[dict[str, Any]]:
    import csv
    import io

    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return []
        names = [name.strip() for name in header]
        rows = []
        for line_number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) > len(names):
                raise SpecError(
                    f"{path}:{line_number}: {len(cells)} fields, header has {len(names)}"
                )
            rows.append({name: _parse_cell(cell) for name, cell in zip(names, cells, strict=False)})
    except csv.Error as exc:
        raise SpecError(f"{path}:{reader.line_num}: invalid CSV: {exc}") from exc
    return rows


def _parse_cell(cell: str) -> int | float | str | None:
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


def _rows_from_document(path: Path, data: Any) -> list[dict[str, Any]]:
    if data is None:
        return []
    # DVC-style plots files wrap the series in a single key: {"train": [...]}.
    if isinstance(data, Mapping) and len(data) == 1:
        (only,) = data.values()
        if isinstance(only, list):
            data = only
    if not isinstance(data, list):
        raise SpecError(f"{path}: expected a list of objects (one per step), got {_kind(data)}")
    rows = []
    for index, row in enumerate(data):
        if not isinstance(row, Mapping):
            raise SpecError(f"{path}: item {index}: expected an object, got {_kind(row)}")
        rows.append(flatten(row))
    return rows
