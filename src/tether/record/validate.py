"""The one check a record read from a ref passes before anything uses it.

Experiment refs are fetched from shared remotes, so a record is hostile input: a
wrong type in one of them (a string `created_at`, metrics as a list, 1e20 as a
date) must not crash `show`, `diff` or `gc` for everyone. `RunRecord.from_json`
(and `load_record`, for a blob) runs `record_problem` before it builds anything;
a record that fails is skipped by the read side and reported, naming its ref and
what is wrong.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from tether.layout import RECORD_SCHEMA

# created_at must be a date `datetime` can show: 1970 up to the end of year 9999.
LATEST_TIMESTAMP = 253402300799.0
UNREADABLE = "unreadable"  # the status a skipped experiment is listed with
_SCALARS = (str, int, float, bool, type(None))


class Skipped(NamedTuple):
    """A ref the read side left out, and why (one line)."""

    ref: str
    problem: str


class _Bad(Exception):
    pass


def _number(value: Any, where: str, *, low: float | None = None,
            high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{where} is {_kind(value)}, not a number")
    if not math.isfinite(value):
        raise _Bad(f"{where} is not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Bad(f"{where} {value!r} is out of range")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             type(None): "null", int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _typed(record: dict[str, Any], key: str, kinds: Any, what: str, *,
           required: bool = False) -> Any:
    if key not in record:
        if required:
            raise _Bad(f"{key} is missing")
        return None
    value = record[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise _Bad(f"{key} is {_kind(value)}, not {what}")
    return value


def _tuple(kinds: Any) -> tuple[Any, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _metric_value(value: Any, where: str) -> None:
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, _SCALARS):
                raise _Bad(f"{where} holds {_kind(item)}")
            if isinstance(item, float) and not math.isfinite(item):
                raise _Bad(f"{where} holds a number that is not finite")
        return
    if not isinstance(value, _SCALARS):
        raise _Bad(f"{where} is {_kind(value)}, not a number, string or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"{where} is not a finite number")


def _check_stage(stage: Any, index: int) -> None:
    where = f"stages[{index}]"
    if not isinstance(stage, dict):
        raise _Bad(f"{where} is {_kind(stage)}, not an object")
    if not isinstance(stage.get("name"), str):
        raise _Bad(f"{where}.name is {_kind(stage.get('name'))}, not a string")
    if not isinstance(stage.get("status", ""), str):
        raise _Bad(f"{where}.status is not a string")
    for key in ("outs", "deps"):
        files = stage.get(key)
        if files is None:
            continue
        if not isinstance(files, dict):
            raise _Bad(f"{where}.{key} is {_kind(files)}, not an object")
        for path, value in files.items():
            if value is not None and not isinstance(value, str):
                raise _Bad(f"{where}.{key}[{path!r}] is {_kind(value)}, not a hash")
    for key in ("log", "params", "restored_from"):
        if stage.get(key) is not None and not isinstance(stage[key], dict):
            raise _Bad(f"{where}.{key} is {_kind(stage[key])}, not an object")
    if stage.get("fingerprint") is not None and not isinstance(stage["fingerprint"], str):
        raise _Bad(f"{where}.fingerprint is not a string")


def _check_spec(spec: dict[str, Any]) -> None:
    if "metrics" in spec:
        rules = spec["metrics"]
        if not isinstance(rules, dict):
            raise _Bad(f"spec.metrics is {_kind(rules)}, not an object")
        for metric, rule in rules.items():
            if not isinstance(rule, dict):
                raise _Bad(f"spec.metrics[{metric!r}] is {_kind(rule)}, not an object")
            if rule.get("direction") not in (None, "min", "max"):
                raise _Bad(f"spec.metrics[{metric!r}].direction is not min or max")
            tolerance = rule.get("tolerance")
            if tolerance is None:
                continue
            if not isinstance(tolerance, dict) or tolerance.get("kind") not in (None, "abs",
                                                                                 "rel"):
                raise _Bad(f"spec.metrics[{metric!r}].tolerance is not {{kind, value}}")
            if tolerance.get("value") is not None:
                _number(tolerance["value"], f"spec.metrics[{metric!r}].tolerance.value", low=0)
    if "stages" in spec:
        stages = spec["stages"]
        if not isinstance(stages, dict):
            raise _Bad(f"spec.stages is {_kind(stages)}, not an object")
        for name, stage in stages.items():
            if not isinstance(stage, dict):
                raise _Bad(f"spec.stages[{name!r}] is {_kind(stage)}, not an object")
            files = stage.get("metrics", [])
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise _Bad(f"spec.stages[{name!r}].metrics is not a list of paths")


def record_problem(record: Any) -> str | None:
    """What is wrong with a decoded record, in a few words; None when it can be used."""
    try:
        _check(record)
    except _Bad as exc:
        return str(exc)
    return None


def _check(record: Any) -> None:
    if not isinstance(record, dict):
        raise _Bad(f"the record is {_kind(record)}, not an object")
    schema = _typed(record, "schema", int, "an integer")
    if schema is not None and schema > RECORD_SCHEMA:
        raise _Bad(f"record schema {schema} is newer than this tether reads ({RECORD_SCHEMA}): "
                   "upgrade tether")
    for key in ("id", "name", "status"):
        _typed(record, key, str, "a string", required=True)
    for key in ("message", "baseline", "branch", "kind"):
        _typed(record, key, (str, type(None)), "a string")
    _number(_typed(record, "created_at", (int, float), "a number", required=True),
            "created_at", low=0, high=LATEST_TIMESTAMP)
    for key in ("started_at", "ended_at", "duration"):
        if record.get(key) is not None:
            _number(record[key], key, low=0, high=LATEST_TIMESTAMP)
    stages = _typed(record, "stages", list, "a list") or []
    for index, stage in enumerate(stages):
        _check_stage(stage, index)
    metrics = _typed(record, "metrics", dict, "an object") or {}
    for name, value in metrics.items():
        _metric_value(value, f"metrics[{name!r}]")
    params = _typed(record, "params", dict, "an object") or {}
    for file, content in params.items():
        if content is not None and not isinstance(content, dict):
            raise _Bad(f"params[{file!r}] is {_kind(content)}, not an object")
    for key in ("steps", "code", "environment"):
        _typed(record, key, dict, "an object")
    for key in ("argv", "targets", "overrides"):
        _typed(record, key, list, "a list")
    spec = _typed(record, "spec", dict, "an object")
    if spec is not None:
        _check_spec(spec)
    reproduces = _typed(record, "reproduces", (dict, type(None)), "an object")
    if reproduces is not None:
        _check_reproduces(reproduces)


def _check_reproduces(reproduces: dict[str, Any]) -> None:
    for key in ("id", "ref", "commit", "name", "origin"):
        if not isinstance(reproduces.get(key), str | None):
            raise _Bad(f"reproduces.{key} is {_kind(reproduces[key])}, not a string")
    tolerances = reproduces.get("tolerances") or {}
    if not isinstance(tolerances, dict):
        raise _Bad(f"reproduces.tolerances is {_kind(tolerances)}, not an object")
    for metric, rule in tolerances.items():
        if (not isinstance(rule, dict) or rule.get("kind") not in ("abs", "rel")
                or isinstance(rule.get("value"), bool)
                or not isinstance(rule.get("value"), int | float)):
            raise _Bad(f"reproduces.tolerances[{metric!r}] is not {{kind, value}}")
        _number(rule["value"], f"reproduces.tolerances[{metric!r}].value", low=0)
