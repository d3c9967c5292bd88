"""The functions training scripts call: `params()`, `log(...)` and `summary(...)`.

Inside a tether run the runner points these at its own files through environment
variables; outside one they fall back to files in the current directory, so a
script runs the same with or without tether. This module stays light: YAML is
imported only when a `params.yaml` has to be read.
"""

from __future__ import annotations

import _thread
import operator
import os
import time

from tether.errors import ParamsError, TetherError

# typing, json, copy and tempfile are imported where used: `import tether` must stay cheap.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PARAMS_FILE_ENV = "TETHER_PARAMS_FILE"
STEPS_FILE_ENV = "TETHER_STEPS_FILE"
SUMMARY_FILE_ENV = "TETHER_SUMMARY_FILE"
DEFAULT_PARAMS_FILE = "params.yaml"
DEFAULT_STEPS_FILE = "tether-steps.jsonl"
DEFAULT_SUMMARY_FILE = "tether-summary.json"

# Names `log` writes itself; a metric may not take them.
_RESERVED_KEYS = frozenset({"step", "ts"})

MetricValue = float | int | bool | str | None


# --------------------------------------------------------------------------- params

_params_cache: dict[tuple[str, int, int], dict[str, Any]] = {}


def params() -> dict[str, Any]:
    """Return the effective params of this run (a fresh copy each call).

    Inside a tether run, `TETHER_PARAMS_FILE` names a JSON file the runner wrote;
    outside, `params.yaml` in the current directory is read if present, else {}.
    """
    path = os.environ.get(PARAMS_FILE_ENV)
    if path:
        loaded = _load_params(path, yaml_file=False, required=True)
    else:
        loaded = _load_params(DEFAULT_PARAMS_FILE, yaml_file=True, required=False)
    import copy

    return copy.deepcopy(loaded)


def _load_params(path: str, *, yaml_file: bool, required: bool) -> dict[str, Any]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if required:
            raise ParamsError(
                f"{path}: params file named by {PARAMS_FILE_ENV} does not exist",
                hint=f"unset {PARAMS_FILE_ENV} to read params.yaml from the current directory",
            ) from None
        return {}
    key = (os.path.abspath(path), info.st_mtime_ns, info.st_size)
    cached = _params_cache.get(key)
    if cached is None:
        cached = _parse_params(path, yaml_file=yaml_file)
        _params_cache.clear()
        _params_cache[key] = cached
    return cached


def _parse_params(path: str, *, yaml_file: bool) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read params: {exc}") from exc
    data: Any
    if yaml_file:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            problem = getattr(exc, "problem", None) or str(exc)
            raise ParamsError(f"{where}: invalid YAML: {problem}") from exc
    else:
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of params, got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- log


class _StepWriter:
    """Appends step-metric lines to one file, one `os.write` per line."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.source: str | bytes | None = None  # the env value the open fd belongs to
        self.fd = -1
        self.next_step = 0
        self.key_prefixes: dict[str, str] = {}

    def target(self, source: str | bytes | None) -> int:
        """Return an fd for `source` (the env value), reopening if it changed."""
        if self.fd >= 0 and source == self.source:
            return self.fd
        path = os.fsdecode(source) if source else DEFAULT_STEPS_FILE
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        if self.fd >= 0:
            os.close(self.fd)
            self.next_step = 0  # a new steps file is a new series
        self.fd, self.source = fd, source
        return fd

    def key_prefix(self, key: str) -> str:
        """Return `,"key":` for a metric name, validating it once."""
        prefix = self.key_prefixes.get(key)
        if prefix is None:
            if key in _RESERVED_KEYS:
                raise ValueError(f"metric name {key!r} is reserved by tether.log")
            if '"' in key or "\\" in key or any(char < " " for char in key):
                raise ValueError(
                    f"metric name {key!r} must not contain quotes, backslashes or control "
                    "characters"
                )
            key.encode()  # a lone surrogate fails here, not in the middle of a run
            prefix = f',"{key}":'
            self.key_prefixes[key] = prefix
        return prefix


def _env_lookup() -> tuple[Callable[[Any], Any], Any]:
    """Return a fast `get` and key for reading `TETHER_STEPS_FILE` on every `log` call."""
    # os.environ.get encodes the key and decodes the value on each call, which would
    # cost a tenth of log's budget; on POSIX its raw bytes dict gives the same answer.
    raw = getattr(os.environ, "_data", None)
    if os.name == "posix" and isinstance(raw, dict):
        return raw.get, os.fsencode(STEPS_FILE_ENV)
    return os.environ.get, STEPS_FILE_ENV


_writer = _StepWriter()
_env_get, _env_key = _env_lookup()
_float_repr = float.__repr__


def _non_finite(value: float) -> str:
    """NaN and infinities as the JSON strings tether records them as (JSON has no NaN)."""
    return '"NaN"' if value != value else '"Infinity"' if value > 0 else '"-Infinity"'


def _format_value(value: Any) -> str:
    """Encode one metric value as JSON text; NaN and infinities become "NaN" etc."""
    kind = type(value)
    if kind is float:
        return _float_repr(value) if value - value == 0.0 else _non_finite(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float_repr(value) if value - value == 0.0 else _non_finite(float(value))
    item = getattr(value, "item", None)  # numpy scalars, one-element tensors
    if callable(item):
        scalar = item()
        if type(scalar) in (float, int, bool, str) or scalar is None:
            return _format_value(scalar)
    raise TypeError(
        f"metric values must be numbers, booleans, strings or None, got {kind.__name__}"
    )


def log(step: int | None = None, **metrics: MetricValue) -> None:
    """Append one step of metrics to the run's step file (flushed immediately).

    Without `step`, steps count up from 0 (per process and file), continuing after
    the last explicit step. NaN and infinities are written as the strings "NaN",
    "Infinity" and "-Infinity" (JSON has no such numbers). The file is
    `TETHER_STEPS_FILE`, else `tether-steps.jsonl` in the current directory.
    """
    writer = _writer
    prefixes = writer.key_prefixes
    parts = []
    for key, value in metrics.items():
        prefix = prefixes.get(key)
        if prefix is None:
            prefix = writer.key_prefix(key)
        if type(value) is float:
            parts.append(prefix + (_float_repr(value) if value - value == 0.0
                                   else _non_finite(value)))
        else:
            parts.append(prefix + _format_value(value))
    body = "".join(parts)
    ts = _float_repr(time.time())
    with writer.lock:
        fd = writer.target(_env_get(_env_key))
        if step is None:
            step = writer.next_step
        elif type(step) is not int:
            if isinstance(step, bool):
                raise TypeError("step must be an int, got bool")
            step = operator.index(step)
        writer.next_step = step + 1
        os.write(fd, f'{{"step":{step}{body},"ts":{ts}}}\n'.encode())


# --------------------------------------------------------------------------- summary

_summary_lock = _thread.allocate_lock()


def summary(**metrics: Any) -> None:
    """Merge final metrics into the run's summary JSON file, written atomically.

    Nested dicts merge key by key. The file is `TETHER_SUMMARY_FILE`, else
    `tether-summary.json` in the current directory.
    """
    import json

    path = os.environ.get(SUMMARY_FILE_ENV) or DEFAULT_SUMMARY_FILE
    update = {_check_summary_key(key): _to_json_value(value) for key, value in metrics.items()}
    with _summary_lock:
        current = _read_summary(path)
        _deep_merge(current, update)
        _write_atomic(path, json.dumps(current, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _check_summary_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"summary keys must be strings, got {type(key).__name__}")
    return key


def _to_json_value(value: Any) -> Any:
    """Return `value` as plain JSON data: NaN/inf → "NaN"/"Infinity"/"-Infinity",
    numpy scalars unwrapped."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return int(value)  # IntEnum and friends become plain ints
    if isinstance(value, float):
        return float(value) if value - value == 0.0 else _non_finite(value).strip('"')
    if isinstance(value, dict):
        return {_check_summary_key(key): _to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json_value(item) for item in value]
    item = getattr(value, "item", None)
    if callable(item):
        return _to_json_value(item())
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return _to_json_value(tolist())
    raise TypeError(f"summary values must be JSON data, got {type(value).__name__}")


def _read_summary(path: str) -> dict[str, Any]:
    import json

    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TetherError(
            f"{path}: cannot merge into the summary file: {exc}",
            hint="delete or fix the file, then call tether.summary() again",
        ) from exc
    if not isinstance(data, dict):
        raise TetherError(
            f"{path}: the summary file holds {type(data).__name__}, not a JSON object",
            hint="delete or fix the file, then call tether.summary() again",
        )
    return data


def _deep_merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        existing = target.get(key)
        if isinstance(value, dict) and isinstance(existing, dict):
            _deep_merge(existing, value)
        else:
            target[key] = value


def _write_atomic(path: str, text: str) -> None:
    import tempfile  # only summary() needs it; keeps `import tether` light

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tether-summary-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
