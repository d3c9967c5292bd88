"""The one validator YAML and the DSL compile through: node tree in, Pipeline or problems out."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from tether.errors import SpecError
from tether.spec.expand import StageBody, expand
from tether.spec.fields import (
    FieldReader,
    as_commands,
    as_integer,
    as_param,
    as_tag,
    as_text,
    check_keys,
    read_env,
    unique,
)
from tether.spec.graph import check_graph
from tether.spec.model import SPEC_VERSION, DataSource, MetricRule, Pipeline, Stage
from tether.spec.nodes import Entry, Node, Problems, describe
from tether.spec.sources import check_sources_against_stages, read_sources
from tether.spec.values import normalize_path, parse_duration, parse_tolerance

TOP_KEYS = ("version", "stages", "metrics", "data")
STAGE_FIELDS = (
    "cmd",
    "deps",
    "outs",
    "params",
    "metrics",
    "plots",
    "wdir",
    "env",
    "timeout",
    "stall_timeout",
    "expected",
    "retries",
    "retry_on",
    "require",
)
TEMPLATE_KEYS = ("foreach", "do", "matrix")
METRIC_KEYS = ("direction", "tolerance", "warn", "gate", "allow_missing")
_STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_GENERATED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9_.-]+")


def build_pipeline(
    document: Node | None, source: Path, problems: Problems, *, allow_generated_names: bool
) -> Pipeline:
    """Validate a whole document; raise one SpecError listing every problem found."""
    stages: dict[str, Stage] = {}
    metrics: dict[str, MetricRule] = {}
    data: dict[str, DataSource] = {}
    if document is None or document.kind != "map":
        found = "nothing" if document is None else describe(document)
        problems.add(
            document.line if document else None,
            "",
            f"expected a mapping with a 'stages' key, found {found}",
        )
    else:
        top = check_keys(document, "", TOP_KEYS, problems)
        version = top.get("version")
        if version and not _is_version(version.node.scalar):
            problems.add(
                version.node.line,
                "version",
                f"expected {SPEC_VERSION}, found {describe(version.node)}",
            )
        stages = _stages(top.get("stages"), document, problems, allow_generated_names)
        if "metrics" in top:
            metrics = _metrics(top["metrics"], problems)
        if "data" in top:
            data = read_sources(top["data"], problems)
            check_sources_against_stages(data, stages, problems)
    if not problems.lines:
        check_graph(stages, problems)
    if problems.lines:
        raise SpecError(problems.in_file_order())
    return Pipeline(source=source, stages=stages, metrics=metrics, data=data)


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == SPEC_VERSION


def _stages(
    entry: Entry | None, document: Node, problems: Problems, allow_generated: bool
) -> dict[str, Stage]:
    if entry is None:
        problems.add(document.line, "stages", "missing: declare at least one stage")
        return {}
    node = entry.node
    if node.kind != "map" or not node.entries:
        found = "no stages" if node.kind == "map" else describe(node)
        problems.add(
            node.line, "stages", f"expected a mapping of stage name -> stage, found {found}"
        )
        return {}
    declared = check_keys(node, "stages", [e.key for e in node.entries], problems)
    bodies: list[StageBody] = []
    for name, stage_entry in declared.items():
        pattern = _GENERATED_NAME if allow_generated and "@" in name else _STAGE_NAME
        if not pattern.fullmatch(name):
            reserved = " ('@' is reserved for foreach/matrix stages)" if "@" in name else ""
            problems.add(
                stage_entry.line,
                f"stages.{name}",
                f"stage names may only contain letters, digits, '_', '.' and '-'{reserved}",
            )
            continue
        bodies.extend(expand(stage_entry, problems))
    stages: dict[str, Stage] = {}
    origin: dict[str, StageBody] = {}
    for body in bodies:
        if body.name in origin:
            first = origin[body.name]
            problems.add(
                body.line,
                body.path,
                f"stage {body.name!r} is declared twice (also at line {first.line})",
            )
            continue
        origin[body.name] = body
        stage = _stage(body, problems)
        if stage is not None:
            stages[body.name] = stage
    return stages


def _stage(decl: StageBody, problems: Problems) -> Stage | None:
    body, path = decl.body, decl.path
    if body.kind != "map":
        problems.add(body.line, path, f"expected a mapping of stage fields, found {describe(body)}")
        return None
    before = problems.reported
    fields = check_keys(body, path, STAGE_FIELDS, problems, suggest=TEMPLATE_KEYS)
    field = FieldReader(fields, path, problems)
    wdir = field.get("wdir", ".", lambda value: normalize_path(as_text(value, "a path")))
    cmd: tuple[str, ...] = field.get("cmd", (), as_commands)
    if "cmd" not in fields:
        problems.add(decl.line, path, "missing 'cmd': the command this stage runs")
    paths = {
        key: tuple(unique(field.each(key, lambda v: normalize_path(as_text(v, "a path"), wdir))))
        for key in ("deps", "outs", "metrics", "plots")
    }
    params = tuple(field.each("params", lambda v: as_param(v, wdir)))
    env = read_env(fields["env"].node, f"{path}.env", problems) if "env" in fields else {}
    durations = {
        key: field.get(key, None, lambda v: None if v is None else parse_duration(v))
        for key in ("timeout", "stall_timeout", "expected")
    }
    retries = field.get("retries", 0, lambda v: as_integer(v, 0, None))
    retry_on = tuple(field.each("retry_on", lambda v: as_integer(v, 0, 255), single=False))
    require = tuple(sorted(set(field.each("require", as_tag))))
    if problems.reported != before:
        return None
    return Stage(
        name=decl.name,
        cmd=cmd,
        wdir=wdir,
        deps=paths["deps"],
        outs=paths["outs"],
        params=params,
        metrics=paths["metrics"],
        plots=paths["plots"],
        env=MappingProxyType(env),
        timeout=durations["timeout"],
        stall_timeout=durations["stall_timeout"],
        expected=durations["expected"],
        retries=retries,
        retry_on=retry_on,
        require=require,
        line=decl.line,
    )


def _metrics(entry: Entry, problems: Problems) -> dict[str, MetricRule]:
    node = entry.node
    if node.kind != "map":
        problems.add(
            node.line,
            "metrics",
            f"expected a mapping of metric name -> rule, found {describe(node)}",
        )
        return {}
    rules: dict[str, MetricRule] = {}
    for name, rule in check_keys(node, "metrics", [e.key for e in node.entries], problems).items():
        path = f"metrics.{name}"
        if rule.node.kind != "map":
            problems.add(
                rule.node.line,
                path,
                "expected a mapping like "
                f"{{direction: max, tolerance: 1%}}, found {describe(rule.node)}",
            )
            continue
        fields = check_keys(rule.node, path, METRIC_KEYS, problems)
        direction = fields.get("direction")
        if direction is None:
            problems.add(rule.line, path, "missing 'direction': min or max")
            continue
        if direction.node.scalar not in ("min", "max") or direction.node.kind != "scalar":
            problems.add(
                direction.node.line,
                f"{path}.direction",
                f"expected min or max, found {describe(direction.node)}",
            )
            continue
        bands: dict[str, tuple[Literal["abs", "rel"], float]] = {}
        for key in ("tolerance", "warn"):
            if key in fields:
                band = fields[key].node
                try:
                    bands[key] = parse_tolerance(
                        band.scalar if band.kind == "scalar" else band.to_python()
                    )
                except ValueError as exc:
                    problems.add(band.line, f"{path}.{key}", str(exc))
        if len(bands) != sum(key in fields for key in ("tolerance", "warn")):
            continue
        kind, amount = bands.get("tolerance", ("abs", 0.0))
        warn = bands.get("warn")
        if warn is not None and warn[0] == kind and warn[1] < amount:
            problems.add(fields["warn"].node.line, f"{path}.warn",
                         f"expected a band wider than the tolerance ({amount:g}), found "
                         f"{warn[1]:g}: `warn` reaches past `tolerance`")
            continue
        flags = {key: _flag(fields[key], f"{path}.{key}", problems)
                 for key in ("gate", "allow_missing") if key in fields}
        if None in flags.values():
            continue
        chosen: Literal["min", "max"] = "min" if direction.node.scalar == "min" else "max"
        rules[name] = MetricRule(
            name, chosen, kind, amount,
            warn_kind=warn[0] if warn else None, warn=warn[1] if warn else None,
            gate=flags.get("gate", True) is not False,
            allow_missing=flags.get("allow_missing", False) is True,
        )
    return rules


def _flag(entry: Entry, path: str, problems: Problems) -> bool | None:
    """A true/false field of a metric rule; None (and a problem) when it is anything else."""
    value = entry.node.to_python() if entry.node.kind == "scalar" else None
    if isinstance(value, bool):
        return value
    problems.add(entry.node.line, path, f"expected true or false, found {describe(entry.node)}")
    return None
