"""Parsers for the scalar values of a spec: durations, tolerances and paths."""

from __future__ import annotations

import math
import posixpath
import re
from typing import Literal

# A worker tag (`tether worker --tags`, a stage's `require:`, `run --queue --require`).
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:=+-]{0,62}")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([dhms])")
_DURATION_FULL = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)[dhms])+")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_HINT = "expected a duration like 30s, 5m or 2h"
_TOLERANCE_HINT = 'expected a tolerance: an absolute number like 0.01 or a relative "1%"'
_ABSOLUTE = re.compile(r"^(?:/|\\|[A-Za-z]:)")


def describe_value(value: object) -> str:
    """How a found scalar is named in a problem: `'abc'`, `3`, `true`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def format_scalar(value: object) -> str:
    """A scalar as text, the way YAML spells it (`true`, `null`, `0.1`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like `90s`, `5m`, `2h`, `1h30m`, `1d`; must be > 0."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _DURATION_FULL.fullmatch(text):
            seconds = sum(
                float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
            )
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"{_DURATION_HINT}, found {describe_value(value)}")
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, found {describe_value(value)}")
    return seconds


def parse_tolerance(value: object) -> tuple[Literal["abs", "rel"], float]:
    """`("abs", x)` from a number, `("rel", n / 100)` from `"n%"`; negative is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        kind: Literal["abs", "rel"] = "abs"
        amount = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        kind = "rel"
        try:
            amount = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{_TOLERANCE_HINT}, found {describe_value(value)}") from None
    else:
        raise ValueError(f"{_TOLERANCE_HINT}, found {describe_value(value)}")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"expected a tolerance >= 0, found {describe_value(value)}")
    return kind, amount


def normalize_path(path: str, wdir: str = ".") -> str:
    """`path` (relative to `wdir`) as a normalized posix path relative to the project root."""
    if not path.strip():
        raise ValueError("expected a non-empty path")
    if _ABSOLUTE.match(path):
        raise ValueError(f"expected a path relative to the project root, found absolute {path!r}")
    joined = posixpath.normpath(posixpath.join(wdir, path))
    if joined == ".." or joined.startswith("../"):
        raise ValueError(f"path {path!r} points outside the project root")
    if joined != ".":
        from tether.pathguard import unsafe_reason

        reason = unsafe_reason(joined)
        if reason is not None:
            raise ValueError(f"path {path!r} is refused: {reason}")
    return joined
