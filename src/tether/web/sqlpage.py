"""The unfiltered experiments table straight from the index, in SQL.

Without a filter, a page and the table's columns need no experiment in memory: SQLite
sorts (`json_extract` for params and metrics), pages (`LIMIT`/`OFFSET`) and aggregates
(`json_each` for the columns, best values and baselines) over `.tether/index.db` in a
fraction of the time it takes to read 100,000 rows into Python. The order and the
columns are those of the in-memory path (`catalog.py`, used for filters, whose language
is Python's): values missing last either way, numbers before text ascending.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tether.experiments.index import FIELDS, IndexedExperiment, indexed
from tether.record.validate import UNREADABLE

_PLAIN = {"name": "name", "created": "created_at", "status": "status", "duration": "duration"}
_READABLE = "status != 'unreadable'"
assert UNREADABLE == "unreadable"


def can_sort(column: str) -> bool:
    """Whether SQL can order by `column` (a key with a double quote cannot be a JSON path)."""
    return column in _PLAIN or (column.partition(".")[2] != "" and '"' not in column)


def _order_by(column: str, descending: bool) -> str:
    # Ties keep the index's order (created_at, rowid), as Python's stable sort keeps them;
    # `created` descending is that order reversed.
    way = "DESC" if descending else "ASC"
    if column == "created":
        return f"created_at {way}, rowid {way}"
    if column in _PLAIN:
        return f"{_PLAIN[column]} {way}, created_at, rowid"
    table, _, key = column.partition(".")
    value = f"json_extract({table}, '$.\"{key}\"')"
    number = f"(CASE WHEN typeof({value}) IN ('integer', 'real') THEN 0 ELSE 1 END)"
    return f"{value} IS NULL, {number} {way}, {value} {way}, created_at, rowid"


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)


def page(connection: sqlite3.Connection, column: str, descending: bool, offset: int,
         limit: int) -> tuple[int, list[IndexedExperiment]]:
    """(every readable experiment, the page of them in this order)."""
    total = connection.execute(f"SELECT COUNT(*) FROM experiments WHERE {_READABLE}")
    rules_seen: dict[str, dict[str, Any]] = {}
    # Sorted by rowid alone first (a small sorter), then the page's rows are read.
    order = [rowid for (rowid,) in connection.execute(
        f"SELECT rowid FROM experiments WHERE {_READABLE} "
        f"ORDER BY {_order_by(column, descending)} LIMIT ? OFFSET ?", (limit, offset))]
    marks = ", ".join("?" * len(order))
    rows = {row[0]: row[1:] for row in connection.execute(
        f"SELECT rowid, {FIELDS} FROM experiments WHERE rowid IN ({marks})", order)}
    return int(total.fetchone()[0]), [indexed(rows[rowid], rules_seen) for rowid in order]


def baselines(connection: sqlite3.Connection) -> list[str]:
    return [sha for (sha,) in connection.execute(
        f"SELECT DISTINCT baseline FROM experiments WHERE {_READABLE}")]


def _directions(connection: sqlite3.Connection) -> dict[str, str]:
    """Metric → min|max, the newest experiment's rule winning (as `show` decides)."""
    directions: dict[str, str] = {}
    for (rules_text,) in connection.execute(
            f"SELECT rules FROM experiments WHERE {_READABLE} GROUP BY rules "
            "ORDER BY MAX(created_at) DESC"):
        for metric, rule in json.loads(rules_text).items():
            if metric not in directions and isinstance(rule, dict) and rule.get(
                    "direction") in ("min", "max"):
                directions[metric] = rule["direction"]
    return directions


def _best(connection: sqlite3.Connection, directions: dict[str, str], metric_keys: list[str]
          ) -> dict[str, dict[str, Any]]:
    extremes = connection.execute(
        "SELECT j.key, MAX(j.value), MIN(j.value) FROM experiments e, json_each(e.metrics) j "
        "WHERE e.status = 'success' AND j.type IN ('integer', 'real') GROUP BY j.key")
    best = {key: high if directions[key] == "max" else low
            for key, high, low in extremes if key in directions and key in metric_keys}
    if not best:
        return {}
    found: dict[str, dict[str, Any]] = {key: {"value": value, "names": []}
                                        for key, value in best.items()}
    values = ", ".join("(?, ?)" for _ in best)
    args = [item for pair in best.items() for item in pair]
    for key, name in connection.execute(
            f"WITH best(key, value) AS (VALUES {values}) "
            "SELECT j.key, e.name FROM experiments e, json_each(e.metrics) j "
            "JOIN best ON best.key = j.key AND best.value = j.value "
            "WHERE e.status = 'success' AND j.type IN ('integer', 'real') "
            "ORDER BY e.created_at", args):
        found[key]["names"].append(name)
    return found


def summary(connection: sqlite3.Connection, total: int, labels: dict[str, list[str]],
            subjects: dict[str, str]) -> dict[str, Any]:
    """The columns, best values and baselines of every readable experiment."""
    params = connection.execute(
        "SELECT j.key, COUNT(DISTINCT json_quote(j.value)), COUNT(*) "
        f"FROM experiments e, json_each(e.params) j WHERE e.{_READABLE} GROUP BY j.key "
        "ORDER BY j.key").fetchall()
    varying = [key for key, distinct, count in params
               if total < 2 or distinct > 1 or count < total]
    metric_keys = [key for (key,) in connection.execute(
        f"SELECT DISTINCT j.key FROM experiments e, json_each(e.metrics) j WHERE e.{_READABLE} "
        "ORDER BY j.key")]
    directions = _directions(connection)
    baselines = connection.execute(
        f"SELECT baseline, COUNT(*) FROM experiments WHERE {_READABLE} GROUP BY baseline "
        "ORDER BY MAX(created_at) DESC")
    return {
        "columns": {
            "params": varying,
            "all_params": [key for key, _, _ in params],
            "metrics": [{"name": m, "direction": directions.get(m)} for m in metric_keys],
        },
        "best": _best(connection, directions, metric_keys),
        "baselines": [{"sha": sha, "names": labels.get(sha, []),
                       "subject": subjects.get(sha, ""), "count": count}
                      for sha, count in baselines],
    }
