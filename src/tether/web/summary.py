"""The unfiltered table's columns, best values and baselines, kept up to date by folding.

Computing them over 100,000 experiments takes SQLite about two seconds (`json_each`
over every row). They are instead folded, experiment by experiment, into a small state
(per param: its first value, whether another was seen, how many have it; per metric:
the extremes of successful runs and who reached them; per baseline: count and newest)
that is kept:

- across changes of the refs while the server runs: a generation that only added
  experiments folds those in (a run recorded: one row read); any ref removed or moved
  folds everything again;
- across restarts, in `.tether/tmp/view-summary.json`, valid for the exact set of refs
  it was folded from (a digest of them): an unchanged repository answers the first
  table page without aggregating anything.

The answer is the same as `sqlpage.summary` computes in SQL (a test holds them equal).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any

from tether.atomic import write_text
from tether.layout import tmp_dir

FORMAT = 2
_COLUMNS = "ref, commit_sha, name, status, created_at, baseline, params, metrics, rules"
_READABLE = "status != 'unreadable'"
_BATCH = 500  # refs per `IN (...)` query


def summary_path(root: Path) -> Path:
    return tmp_dir(root) / "view-summary.json"


def refs_digest(refs: dict[str, str]) -> str:
    text = "\n".join(map(" ".join, sorted(refs.items())))
    return hashlib.sha256(text.encode()).hexdigest()


def empty_state() -> dict[str, Any]:
    return {"total": 0, "params": {}, "metrics": [], "rules": {}, "extremes": {},
            "baselines": {}}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fold_extreme(extremes: dict[str, Any], metric: str, value: Any, name: str,
                  created: float) -> None:
    held = extremes.get(metric)
    if held is None:
        extremes[metric] = {"max": value, "max_names": [[created, name]],
                            "min": value, "min_names": [[created, name]]}
        return
    for way, better in (("max", value > held["max"]), ("min", value < held["min"])):
        if better:
            held[way], held[f"{way}_names"] = value, [[created, name]]
        elif value == held[way]:
            held[f"{way}_names"].append([created, name])


def fold(state: dict[str, Any], rows: Any, refs: dict[str, str]) -> None:
    """Add readable index rows (`_COLUMNS`) to `state`, in place: those of `refs` only
    (the index may already hold rows of refs newer than these)."""
    params, extremes, rules, baselines = (state["params"], state["extremes"], state["rules"],
                                          state["baselines"])
    metric_keys = set(state["metrics"])
    for ref, commit, name, status, created, baseline, params_text, metrics_text, rules_text \
            in rows:
        if refs.get(ref) != commit:
            continue
        state["total"] += 1
        for key, value in json.loads(params_text).items():
            held = params.get(key)
            if held is None:
                params[key] = [value, False, 1]
            else:  # another value: 1 and 1.0 and true differ, as in JSON
                held[1] = held[1] or type(held[0]) is not type(value) or held[0] != value
                held[2] += 1
        metrics = json.loads(metrics_text)
        metric_keys.update(metrics)
        if status == "success":
            for metric, value in metrics.items():
                if _is_number(value):
                    _fold_extreme(extremes, metric, value, name, created)
        rules[rules_text] = max(created, rules.get(rules_text, created))
        count, newest = baselines.get(baseline, (0, created))
        baselines[baseline] = [count + 1, max(newest, created)]
    state["metrics"] = sorted(metric_keys)


def _directions(rules: dict[str, float]) -> dict[str, str]:
    """Metric → min|max, the newest experiment's rule winning (as `show` decides)."""
    directions: dict[str, str] = {}
    for text in sorted(rules, key=lambda t: -rules[t]):
        for metric, rule in json.loads(text).items():
            if metric not in directions and isinstance(rule, dict) and rule.get(
                    "direction") in ("min", "max"):
                directions[metric] = rule["direction"]
    return directions


def render(state: dict[str, Any], labels: dict[str, list[str]],
           subjects: dict[str, str]) -> dict[str, Any]:
    """The `columns`, `best` and `baselines` of `/api/experiments` from a folded state."""
    total = state["total"]
    params = state["params"]
    directions = _directions(state["rules"])
    best = {}
    for metric, held in sorted(state["extremes"].items()):
        way = directions.get(metric)
        if way is not None:
            names = [name for _, name in sorted(held[f"{way}_names"], key=lambda p: p[0])]
            best[metric] = {"value": held[way], "names": names}
    baselines = sorted(state["baselines"].items(), key=lambda item: -item[1][1])
    return {
        "columns": {
            "params": [key for key, (_, varies, count) in sorted(params.items())
                       if total < 2 or varies or count < total],
            "all_params": sorted(params),
            "metrics": [{"name": m, "direction": directions.get(m)} for m in state["metrics"]],
        },
        "best": best,
        "baselines": [{"sha": sha, "names": labels.get(sha, []),
                       "subject": subjects.get(sha, ""), "count": count}
                      for sha, (count, _) in baselines],
    }


class Summaries:
    """The folded state of the refs last seen, brought in line with new refs on demand."""

    def __init__(self, root: Path) -> None:
        self.path = summary_path(root)
        self._refs: dict[str, str] | None = None
        self._state: dict[str, Any] | None = None

    def state_for(self, refs: dict[str, str], connection: sqlite3.Connection
                  ) -> dict[str, Any]:
        """The state of exactly `refs` (the index, `connection`, holds their rows)."""
        if self._refs == refs and self._state is not None:
            return self._state
        if self._state is None and self._read(refs):
            assert self._state is not None
            return self._state
        if self._refs is not None and self._state is not None and all(
                refs.get(ref) == commit for ref, commit in self._refs.items()):
            added = [ref for ref, commit in refs.items() if ref not in self._refs]
            state: dict[str, Any] = json.loads(json.dumps(self._state))  # may be being read
        else:
            added, state = list(refs), empty_state()
        if len(added) == len(refs):
            fold(state, connection.execute(f"SELECT {_COLUMNS} FROM experiments WHERE "
                                           f"{_READABLE} ORDER BY created_at, rowid"), refs)
        else:
            for start in range(0, len(added), _BATCH):
                chunk = added[start:start + _BATCH]
                fold(state, connection.execute(
                    f"SELECT {_COLUMNS} FROM experiments WHERE {_READABLE} AND ref IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY created_at, rowid", chunk), refs)
        self._refs, self._state = dict(refs), state
        self._write(refs, state)
        return state

    def _read(self, refs: dict[str, str]) -> bool:
        """Take the saved state if it was folded from exactly `refs`."""
        with suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(self.path.read_text())
            if saved["format"] == FORMAT and saved["digest"] == refs_digest(refs):
                self._refs, self._state = dict(refs), saved["state"]
                return True
        return False

    def _write(self, refs: dict[str, str], state: dict[str, Any]) -> None:
        with suppress(OSError):  # only a cache: a read-only folder costs a refold
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps({"format": FORMAT, "digest": refs_digest(refs),
                                              "state": state}), fsync=False)
