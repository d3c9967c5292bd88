"""Just enough of PromQL to say which series an expression reads: metric names, the
labels its matchers name, and the labels it groups by (`by (...)`, `on (...)`)."""

from __future__ import annotations

import re

from tether.structs import field, struct

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[A-Za-z_:][A-Za-z0-9_:]*|\S')
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?')
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"bool", "and", "or", "unless", "offset", "group_left", "group_right"}
# Aggregations may put their grouping first: `sum by (queue) (...)`.
_AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk",
                 "bottomk", "quantile", "count_values"}


@struct
class Reads:
    """What an expression reads."""

    metrics: dict[str, set[str]] = field(default_factory=dict)  # metric -> matcher labels
    grouping: set[str] = field(default_factory=set)


def _labels(braces: str) -> set[str]:
    inner = braces[1:-1].strip()
    found, pos = set(), 0
    while pos < len(inner):
        match = _MATCHER.match(inner, pos)
        if match is None:
            raise ValueError(f"cannot read the matchers {braces!r}")
        found.add(match.group(1))
        pos = match.end()
    return found


def reads(expr: str) -> Reads:
    """The series `expr` reads; a ValueError for what this reader does not know."""
    tokens = _TOKEN.findall(expr)
    result = Reads()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _GROUPING and following == "(":
            end = tokens.index(")", i)
            result.grouping |= {t for t in tokens[i + 2:end] if t != ","}
            i = end + 1
            continue
        if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token) and following != "(" \
                and token not in _KEYWORDS | _AGGREGATIONS:
            labels = _labels(following) if following.startswith("{") else set()
            result.metrics.setdefault(token, set()).update(labels)
        i += 1
    return result


def label_values(query: str) -> tuple[str, str]:
    """(metric, label) of a Grafana `label_values(metric, label)` variable query."""
    match = re.fullmatch(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*(\w+)\s*\)", query)
    if match is None:
        raise ValueError(f"not a label_values(metric, label) query: {query!r}")
    return match.group(1), match.group(2)
