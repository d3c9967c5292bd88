"""Small, exact YAML helpers that spare a run from importing PyYAML.

- `parse_scalar` types a `-S` value the way `yaml.safe_load` would, for the
  common shapes (ints, decimals, booleans, null, plain words); anything else
  returns NOTHING and the caller asks PyYAML.
- `render` writes a value as YAML flow text that PyYAML reads back as-is.
- `set_value` replaces one value in a block-style YAML document in place,
  keeping comments and layout; it returns None whenever the document is not
  plainly laid out, and the caller falls back to dumping the whole file.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

NOTHING: Any = object()

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/]*")
_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
_NULL = {"null", "Null", "NULL", "~"}
_KEY_LINE = re.compile(r"^( *)([A-Za-z0-9_][A-Za-z0-9_.\-]*)[ ]*:(?:[ ]+(.*))?$")


def parse_scalar(text: str) -> Any:
    """`text` typed as yaml.safe_load would, or NOTHING when unsure."""
    if text == "":
        return NOTHING
    if _INT.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _NULL:
        return None
    if _WORD.fullmatch(text):
        return text
    return NOTHING


def render(value: Any) -> str:
    """`value` as YAML flow text (JSON-like, with floats PyYAML reads as floats)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            sign = "" if exponent.startswith(("-", "+")) else "+"
            return f"{mantissa}e{sign}{exponent}"
        return text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(str(k))}: {render(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _split_comment(rest: str) -> tuple[str, str] | None:
    """(value text, comment including '#') of a plain value, or None if quoted/odd."""
    if any(q in rest for q in "\"'`&*!|>"):
        return None
    cut = rest.find(" #")
    if cut < 0:
        return rest.rstrip(), ""
    return rest[:cut].rstrip(), rest[cut:].strip()


def set_value(text: str, key: str, value: Any) -> str | None:
    """`text` with the value at dotted `key` replaced, or None if unsure how."""
    if "\t" in text or "---" in text or "..." in text.splitlines()[-1:]:
        return None
    lines = text.splitlines(keepends=True)
    parts = key.split(".")
    start, parent_indent = 0, -1
    for depth, part in enumerate(parts):
        child_indent: int | None = None
        found: int | None = None
        match: re.Match[str] | None = None
        for j in range(start, len(lines)):
            line = lines[j].rstrip("\r\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(line) - len(line.lstrip(" "))
            if indent <= parent_indent:
                break
            if stripped.startswith(("- ", "-\n", "{", "[", "?")) or stripped == "-":
                return None
            child_indent = indent if child_indent is None else child_indent
            if indent != child_indent:
                continue
            candidate = _KEY_LINE.match(line)
            if candidate is None:
                return None
            if candidate.group(2) == part:
                found, match = j, candidate
                break
        if found is None or match is None:
            return None
        rest = match.group(3) or ""
        if depth < len(parts) - 1:
            above = _split_comment(rest)
            if above is None or above[0] != "":
                return None
            start, parent_indent = found + 1, len(match.group(1))
            continue
        split = _split_comment(rest)
        if split is None or split[0] == "":
            return None  # a quoted value, or a block below: let PyYAML rewrite the file
        old_value, comment = split
        if old_value.startswith(("[", "{")) and not _balanced(old_value):
            return None
        newline = lines[found][len(lines[found].rstrip("\r\n")) :]
        head = lines[found][: match.start(3)]
        lines[found] = head + render(value) + (f"  {comment}" if comment else "") + newline
        return "".join(lines)
    return None


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if depth < 0:
            return False
    return depth == 0
