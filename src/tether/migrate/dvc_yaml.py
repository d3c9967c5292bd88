"""`dvc.yaml` → `tether.yaml`: a pure translation, with a note for what has no equivalent.

DVC 3's format is read: `stages` (`cmd`, `wdir`, `deps`, `params`, `outs`, `metrics`,
`plots`, `foreach`/`do`, `matrix`, `vars`), top-level `vars`, `metrics` and `plots`.
`${...}` references to vars (and to `params.yaml`, DVC's default vars) are resolved
here, as DVC resolves them; `${item}`/`${key}` are kept for tether's own `foreach`.
A value taken from `params.yaml` becomes a param of the stage, as DVC tracks it.
Whatever tether cannot say (`cache: false`, `persist`, `frozen`, plot templates...)
is kept as a `# dvc:` comment above the stage and returned in `notes`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from tether.errors import SpecError
from tether.structs import struct

DEFAULT_PARAMS = "params.yaml"
_REFERENCE = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_LOOP_VARIABLES = ("item", "key")
_STEP_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".yaml", ".yml")
_METRIC_SUFFIXES = (".json", ".yaml", ".yml")
_IGNORED_STAGE_KEYS = ("desc", "meta")
_NOTED_STAGE_KEYS = {
    "frozen": "frozen stages have no equivalent: tether runs a stage when its inputs change "
              "(name the other stages as targets to leave it out)",
    "always_changed": "always_changed has no equivalent: use `tether run --force STAGE`",
}

# Reads a vars / params file (relative to the project root); None when it is missing.
ReadFile = Callable[[str], Mapping[str, Any] | None]


@struct(frozen=True)
class Conversion:
    """The `tether.yaml` text, and what could not be translated (one line each)."""

    text: str
    notes: list[str]
    stages: list[str]


class _Stage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, Any] = {}
        self.template: dict[str, Any] = {}  # foreach / matrix, written before the fields
        self.comments: list[str] = []


def convert(text: str, read_file: ReadFile, *, source: str = "dvc.yaml") -> Conversion:
    """Translate the text of a `dvc.yaml`; `read_file` gives params and vars files."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("stages"), Mapping):
        raise SpecError(f"{source}: expected a mapping with a 'stages' key",
                        hint="is this a DVC 2/3 dvc.yaml?")
    notes: list[str] = []
    default_params = read_file(DEFAULT_PARAMS) or {}
    top_vars = _load_vars(document.get("vars") or [], read_file, notes, f"{source}: vars")
    stages: list[_Stage] = []
    for name, body in document["stages"].items():
        if not isinstance(body, Mapping):
            raise SpecError(f"{source}: stages.{name}: expected a mapping of stage fields")
        stages.append(_convert_stage(str(name), body, default_params, top_vars, read_file))
    _attach_top_level(document, stages, notes, source)
    for stage in stages:
        notes += [f"{stage.name}: {line}" for line in stage.comments]
    return Conversion(_render(stages, notes, source), notes, [s.name for s in stages])


def _load_vars(entries: Any, read_file: ReadFile, notes: list[str], where: str) -> dict[str, Any]:
    """DVC's `vars`: files (`f.yaml`, `f.yaml:a,b`) and inline mappings, merged in order."""
    merged: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, Mapping):
            merged.update(entry)
            continue
        path, _, keys = str(entry).partition(":")
        data = read_file(path)
        if data is None:
            notes.append(f"{where}: {path} not found; its values are left as ${{...}}")
            continue
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
        merged.update({k: v for k, v in data.items() if not wanted or k in wanted})
    return merged


def _convert_stage(name: str, body: Mapping[str, Any], default_params: Mapping[str, Any],
                   top_vars: Mapping[str, Any], read_file: ReadFile) -> _Stage:
    stage = _Stage(name)
    local_notes: list[str] = []
    variables = {**default_params, **top_vars,
                 **_load_vars(body.get("vars") or [], read_file, local_notes, "vars")}
    used_params: list[str] = []
    resolver = _Resolver(variables, default_params, used_params, stage.comments)
    fields: Mapping[str, Any] = body
    if "foreach" in body:
        stage.template["foreach"] = resolver.value(body["foreach"], loop=False)
        fields = body.get("do") or {}
        if not isinstance(fields, Mapping):
            raise SpecError(f"dvc.yaml: stages.{name}.do: expected a mapping of stage fields")
    elif "matrix" in body:
        matrix = resolver.value(body["matrix"], loop=False)
        if isinstance(matrix, Mapping):
            for axis, values in matrix.items():
                if isinstance(values, list) and any(isinstance(v, Mapping | list)
                                                    for v in values):
                    stage.comments.append(f"matrix axis {axis!r} holds lists or mappings; "
                                          "tether's matrix takes scalars only")
        stage.template["matrix"] = matrix
    stage.comments += local_notes
    loop = bool(stage.template)
    wdir = str(resolver.value(fields.get("wdir", "."), loop=loop)).rstrip("/") or "."
    if wdir != ".":
        stage.fields["wdir"] = wdir
    for key, value in fields.items():
        if key in ("foreach", "do", "matrix", "vars"):
            continue
        if key in _IGNORED_STAGE_KEYS:
            if key == "desc":
                stage.comments.append(f"desc: {value}")
            continue
        if key in _NOTED_STAGE_KEYS:
            if value:
                stage.comments.append(_NOTED_STAGE_KEYS[key])
            continue
        value = resolver.value(value, loop=loop)
        if key == "cmd":
            stage.fields["cmd"] = value
        elif key == "wdir":
            continue
        elif key == "deps":
            stage.fields["deps"] = [str(d) for d in _as_list(value)]
        elif key == "params":
            stage.fields["params"] = _params(value, wdir, read_file, stage.comments)
        elif key in ("outs", "metrics", "plots"):
            _outputs(stage, key, value)
        else:
            stage.comments.append(f"{key}: {value!r} has no equivalent; left out")
    prefix = "" if wdir == "." else posixpath.relpath(DEFAULT_PARAMS, wdir) + ":"
    for param in (prefix + p for p in used_params):
        params = stage.fields.setdefault("params", [])
        if param not in params and not any(param.startswith(p + ".") for p in params):
            params.append(param)
    return stage


class _Resolver:
    """`${name.path}` from vars; loop variables stay for tether to expand."""

    def __init__(self, variables: Mapping[str, Any], default_params: Mapping[str, Any],
                 used: list[str], comments: list[str]) -> None:
        self.variables, self.default_params = variables, default_params
        self.used, self.comments = used, comments

    def value(self, value: Any, *, loop: bool) -> Any:
        if isinstance(value, str):
            return self._string(value, loop)
        if isinstance(value, list):
            return [self.value(v, loop=loop) for v in value]
        if isinstance(value, Mapping):
            return {self._string(str(k), loop): self.value(v, loop=loop)
                    for k, v in value.items()}
        return value

    def _string(self, text: str, loop: bool) -> Any:
        whole = _REFERENCE.fullmatch(text)
        if whole:
            found = self._lookup(whole.group(1), loop)
            return text if found is _KEEP else found
        return _REFERENCE.sub(lambda m: self._inline(m, loop), text)

    def _inline(self, match: re.Match[str], loop: bool) -> str:
        found = self._lookup(match.group(1), loop)
        if found is _KEEP:
            return match.group(0)
        if isinstance(found, Mapping | list):
            self.comments.append(f"${{{match.group(1)}}} is a mapping or list: DVC unpacks it "
                                 "into options, tether does not; write the options out")
            return match.group(0)
        if isinstance(found, bool):
            return "true" if found else "false"
        return str(found)

    def _lookup(self, expression: str, loop: bool) -> Any:
        path = expression.replace("[", ".").replace("]", "").split(".")
        if path[0] in _LOOP_VARIABLES and loop:
            return _KEEP
        value: Any = self.variables
        for part in path:
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                self.comments.append(f"${{{expression}}} is not defined in vars or params.yaml; "
                                     "left as it is")
                return _KEEP
        if _has_path(self.default_params, path) and ".".join(path) not in self.used:
            self.used.append(".".join(path))
        return value


_KEEP = object()


def _has_path(data: Mapping[str, Any], path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _params(value: Any, wdir: str, read_file: ReadFile, comments: list[str]) -> list[str]:
    """DVC params (keys of params.yaml, or `{file: [keys]}`) as tether `[FILE:]KEY`."""
    params: list[str] = []
    for entry in _as_list(value):
        if not isinstance(entry, Mapping):
            params.append(str(entry))
            continue
        for file, keys in entry.items():
            prefix = "" if file == DEFAULT_PARAMS else f"{file}:"
            if not file.endswith((".yaml", ".yml", ".json")):
                comments.append(f"params file {file} is not YAML or JSON; tether reads only "
                                "those: convert it")
            if not keys:
                data = read_file(posixpath.normpath(posixpath.join(wdir, file))) or {}
                if not data:
                    comments.append(f"params: all of {file} was tracked; it could not be read, "
                                    "so list its keys")
                keys = list(data)
            params += [f"{prefix}{k}" for k in _as_list(keys)]
    return params


def _outputs(stage: _Stage, key: str, value: Any) -> None:
    """`outs`/`metrics`/`plots` entries, with their options turned into notes."""
    for entry in _as_list(value):
        path, options = (next(iter(entry.items())) if isinstance(entry, Mapping)
                         else (entry, None))
        path = str(path)
        options = options if isinstance(options, Mapping) else {}
        target = key
        if key in ("metrics", "plots") and not _readable_file(path, key):
            stage.comments.append(f"{key} {path} is a folder or an unknown format: declared "
                                  "as an output (`tether plots` reads dvclive folders itself)")
            target = "outs"
        stage.fields.setdefault(target, []).append(path)
        for option, setting in options.items():
            if option == "cache" and setting is False and key == "outs":
                stage.comments.append(f"outs {path}: `cache: false` has no equivalent: tether "
                                      "caches every output (commit small files to git instead "
                                      "of declaring them)")
            elif option == "persist" and setting:
                stage.comments.append(f"{key} {path}: `persist: true` has no equivalent: "
                                      "tether moves an output aside before its stage runs")
            elif option in ("x", "y", "template", "title", "x_label", "y_label"):
                continue
            elif option not in ("cache", "desc", "push", "remote", "type", "labels", "meta"):
                stage.comments.append(f"{key} {path}: option {option!r} has no equivalent")
        plot = {k: options[k] for k in ("template", "x", "y") if k in options}
        if plot:
            shown = ", ".join(f"{k}: {v}" for k, v in plot.items())
            stage.comments.append(f"plot {path}: {shown} (`tether plots` infers the chart "
                                  "from the field names)")


def _readable_file(path: str, key: str) -> bool:
    return path.lower().endswith(_METRIC_SUFFIXES if key == "metrics" else _STEP_SUFFIXES)


def _attach_top_level(document: Mapping[str, Any], stages: list[_Stage], notes: list[str],
                      source: str) -> None:
    """Top-level `metrics`/`plots` files go to the stage writing them (or the only stage)."""
    for key in ("metrics", "plots"):
        entries = document.get(key) or []
        for entry in _as_list(entries):
            if isinstance(entry, Mapping):
                plot_id, options = next(iter(entry.items()))
                files = _plot_files(plot_id, options)
            else:
                files = [str(entry)]
            for path in files:
                owner = _writer(stages, path)
                if owner is None and not _readable_file(path, key):
                    notes.append(f"{source}: top-level {key} {path}: a folder no stage "
                                 "declares; `tether plots` reads dvclive folders from each "
                                 "experiment's tree")
                    continue
                if owner is None:
                    notes.append(f"{source}: top-level {key} {path}: no stage declares it; "
                                 f"add it to the `{key}` of the stage writing it")
                    continue
                wdir = str(owner.fields.get("wdir", "."))
                local = path if wdir == "." else posixpath.relpath(path, wdir)
                if local in owner.fields.get(key, []) + owner.fields.get("outs", []):
                    continue
                if _readable_file(path, key):
                    owner.fields.setdefault(key, []).append(local)
                else:
                    owner.comments.append(f"top-level {key} {path}: a folder; `tether plots` "
                                          "reads dvclive folders from the experiment")


def _plot_files(plot_id: Any, options: Any) -> list[str]:
    """The files a top-level plot reads: its `y` files, else its id (a path)."""
    if isinstance(options, Mapping) and isinstance(options.get("y"), Mapping):
        return [str(f) for f in options["y"]]
    return [str(plot_id)]


def _writer(stages: list[_Stage], path: str) -> _Stage | None:
    for stage in stages:
        wdir = str(stage.fields.get("wdir", "."))
        written = [stage.fields.get(k, []) for k in ("outs", "metrics", "plots")]
        for out in (o for paths in written for o in paths):
            full = posixpath.normpath(posixpath.join(wdir, out))
            if path == full or path.startswith(full + "/"):
                return stage
    # Not declared anywhere: the only stage, or the only one working in its folder.
    if len(stages) == 1:
        return stages[0]
    inside = [s for s in stages if s.fields.get("wdir", ".") != "."
              and path.startswith(str(s.fields["wdir"]) + "/")]
    return inside[0] if len(inside) == 1 else None


def _render(stages: list[_Stage], notes: list[str], source: str) -> str:
    lines = [f"# Converted from {source} by `tether init --from-dvc`.",
             "# Reference: docs/spec.md; what DVC had and tether has not is under `# dvc:`.",
             "version: 1", "stages:"]
    for stage in stages:
        lines += [f"  # dvc: {line}" for line in stage.comments]
        body: dict[str, Any] = dict(stage.template)
        order = ("wdir", "cmd", "deps", "params", "outs", "metrics", "plots")
        fields = {k: stage.fields[k] for k in order if k in stage.fields}
        if "foreach" in body:
            body["do"] = fields
        else:
            body.update(fields)
        dumped = yaml.safe_dump({stage.name: body}, sort_keys=False, default_flow_style=False,
                                allow_unicode=True, width=100)
        lines += ["  " + line for line in dumped.splitlines()]
    unattached = [n for n in notes if n.startswith(f"{source}:")]
    if unattached:
        lines += ["", *(f"# dvc: {n}" for n in unattached)]
    return "\n".join(lines) + "\n"
