"""Params files, `-S` overrides typed by YAML rules, and the effective params of a run.

Named `parameters` so that `tether.params` stays the training-script function.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import blake3

from tether.errors import ParamsError, close_matches
from tether.layout import DEFAULT_PARAMS
from tether.structs import field, struct
from tether.yamledit import NOTHING, parse_scalar, set_value

_MISSING = object()


@struct(frozen=True)
class Override:
    """One `-S [FILE:][+]KEY=VALUE` from the command line."""

    file: str
    key: str
    value: Any
    allow_new: bool
    text: str


@struct
class Params:
    """The params files of a project: file name -> nested mapping."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    texts: dict[str, str] = field(default_factory=dict)
    edits: list[Override] = field(default_factory=list)

    def copy(self) -> Params:
        """An independent copy (overrides applied to it leave this one alone)."""
        return Params(files=_copied(self.files), changed=set(self.changed),
                      texts=dict(self.texts), edits=list(self.edits))

    def get(self, file: str, key: str) -> Any:
        """The value at dotted `key` in `file`; KeyError if absent."""
        node: Any = self.files[file]
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(key)
            node = node[part]
        return _copied(node)

    def main(self) -> dict[str, Any]:
        """The content of params.yaml (empty when the project has none)."""
        main: dict[str, Any] = _copied(self.files.get(DEFAULT_PARAMS, {}))
        return main

    def to_json(self) -> dict[str, Any]:
        files: dict[str, Any] = _copied(self.files)
        return files


def parse_override(text: str) -> Override:
    """Parse `[FILE:][+]KEY=VALUE`; VALUE is typed by YAML (`1` int, `[1,2]` list)."""
    if "=" not in text:
        raise ParamsError(
            f"-S {text!r}: expected KEY=VALUE, e.g. -S train.lr=0.01",
        )
    lhs, raw = text.split("=", 1)
    file = DEFAULT_PARAMS
    if ":" in lhs:
        file, lhs = lhs.rsplit(":", 1)
        _check_params_path(file, f"-S {text!r}")
    allow_new = lhs.startswith("+")
    key = lhs[1:] if allow_new else lhs
    if not key or any(not part for part in key.split(".")):
        raise ParamsError(f"-S {text!r}: {key!r} is not a valid dotted key (e.g. train.lr)")
    value = parse_scalar(raw)
    if value is NOTHING:
        import yaml

        from tether.spec.yamlguard import safe_load

        try:
            value = safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ParamsError(f"-S {text!r}: value {raw!r} is not valid YAML ({exc})") from None
    return Override(file=file, key=key, value=value, allow_new=allow_new, text=text)


def _check_params_path(name: str, where: str) -> None:
    """Refuse a params file path that would be read or written outside the work tree."""
    from tether.pathguard import unsafe_reason

    reason = unsafe_reason(name)
    if reason is not None:
        from tether.errors import UnsafePathError

        raise UnsafePathError(
            f"{where}: params file {name!r} is refused: {reason}",
            hint="params files are paths inside the project, relative to its root "
            "(e.g. -S conf/train.yaml:lr=0.1)",
        )


def load_params(root: Path, files: set[str], cache_file: Path | None = None) -> Params:
    """Read params.yaml (when present) and every other params file in `files`.

    With `cache_file`, parsed files are kept keyed by their content, so an
    unchanged params file costs neither PyYAML's import nor its parse.
    """
    cache = _read_cache(cache_file)
    fresh: dict[str, Any] = {}
    params = Params()
    wanted = set(files)
    if (root / DEFAULT_PARAMS).exists():
        wanted.add(DEFAULT_PARAMS)
    guard = None
    for name in sorted(wanted):
        _check_params_path(name, "the params files")
        if name != DEFAULT_PARAMS:  # through a symlinked directory, it could lead elsewhere
            from tether.pathguard import WorkTreeGuard

            guard = guard or WorkTreeGuard(root)
            guard.target(name, where=f"params file {name!r}")
        path = root / name
        if not path.exists():
            if name == DEFAULT_PARAMS:
                params.files[name] = {}
                continue
            raise ParamsError(
                f"{name}: params file not found", hint="create it or fix the reference"
            )
        try:
            text = path.read_text()
        except UnicodeDecodeError as exc:
            raise ParamsError(f"{name}: not a text file: {exc}") from None
        params.texts[name] = text
        digest = blake3.blake3(text.encode()).hexdigest()
        entry = cache.get(name)
        if isinstance(entry, dict) and entry.get("digest") == digest:
            data = entry["data"]
        else:
            data = parse_params_text(name, text)
            if _json_safe(data):
                fresh[name] = {"digest": digest, "data": data}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ParamsError(
                f"{name}:1: expected a mapping of params at the top, found {type(data).__name__}"
            )
        params.files[name] = data
    if fresh and cache_file is not None:
        _write_cache(cache_file, {**cache, **fresh})
    return params


def remember_params(cache_file: Path, params: Params, written: dict[str, str]) -> None:
    """Record files tether itself just wrote, so the next run need not parse them."""
    cache = _read_cache(cache_file)
    for name, text in written.items():
        data = params.files.get(name)
        if _json_safe(data):
            cache[name] = {"digest": blake3.blake3(text.encode()).hexdigest(), "data": data}
    _write_cache(cache_file, cache)


def parse_params_text(name: str, text: str) -> Any:
    """The content of params file `name` (YAML, or JSON by its suffix); ParamsError if
    it does not parse."""
    if name.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    import yaml

    from tether.spec.yamlguard import safe_load

    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ParamsError(f"{where}: not valid YAML: {exc}") from None


def _json_safe(data: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(data)) == data)
    except (TypeError, ValueError):
        return False


def _read_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None:
        return {}
    try:
        data = json.loads(cache_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(cache_file: Path, data: dict[str, Any]) -> None:
    from tether.atomic import write_text

    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        write_text(cache_file, json.dumps(data), fsync=False)


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            keys.append(dotted)
            keys.extend(_all_keys(v, dotted + "."))
    return keys


def apply_overrides(params: Params, overrides: list[Override]) -> None:
    """Apply `-S` overrides in place; every unknown key is one collected problem."""
    problems: list[str] = []
    for ov in overrides:
        data = params.files.setdefault(ov.file, {}) if ov.allow_new else params.files.get(ov.file)
        if data is None:
            problems.append(
                f"-S {ov.text}: params file {ov.file!r} is not used by this project "
                f"(write -S {ov.file}:+{ov.key}=... to create it)"
            )
            continue
        parts = ov.key.split(".")
        node: Any = data
        ok = True
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict):
                ok = False
                break
            if part not in node:
                if not ov.allow_new:
                    ok = False
                    break
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                problems.append(
                    f"-S {ov.text}: {'.'.join(parts[: i + 1])} in {ov.file} is a "
                    f"{type(node).__name__}, not a mapping"
                )
                ok = False
                break
        else:
            if not isinstance(node, dict) or (parts[-1] not in node and not ov.allow_new):
                ok = False
        if not ok:
            if problems and problems[-1].startswith(f"-S {ov.text}:"):
                continue
            known = _all_keys(data)
            close = close_matches(ov.key, known, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"-S {ov.text}: {ov.file} has no key {ov.key!r}{suggestion}; "
                f"write -S +{ov.key}=... to add a new key"
            )
            continue
        node[parts[-1]] = ov.value
        params.changed.add(ov.file)
        params.edits.append(ov)
    if problems:
        raise ParamsError(problems)


def render_params_file(params: Params, name: str) -> str:
    """The new text of a changed params file: edited in place when possible.

    Editing the changed values in place keeps the user's comments and layout;
    otherwise the whole file is written again.
    """
    text = params.texts.get(name)
    if text is not None and not name.endswith(".json"):
        for edit in params.edits:
            if edit.file != name or text is None:
                continue
            text = set_value(text, edit.key, edit.value)
        if text is not None:
            return text
    return dump_params_file(name, params.files[name])


def dump_params_file(name: str, data: dict[str, Any]) -> str:
    """The text of a params file as tether writes it (YAML, or JSON for .json)."""
    if name.endswith(".json"):
        return json.dumps(data, indent=2) + "\n"
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


def _copied(value: Any) -> Any:
    """A deep copy of params data (dicts and lists of immutable scalars).

    Not `copy.deepcopy`: the `copy` module is one more import on every run's path.
    """
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value
