"""A cache of the compiled YAML spec, keyed by the spec file's content.

Parsing and validating `tether.yaml` costs more than everything else tether
does before a stage starts; an unchanged spec is read back from JSON instead.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import blake3

from tether import __version__
from tether.atomic import write_text
from tether.spec.model import DataSource, MetricRule, ParamRef, Pipeline, Stage

YAML_NAMES = ("tether.yaml", "tether.yml")


def load_pipeline_cached(root: Path, cache_file: Path) -> Pipeline:
    """`load_pipeline(root)`, served from `cache_file` while the YAML spec is unchanged."""
    present = [root / name for name in (*YAML_NAMES, "tetherfile.py", "tether.py")
               if (root / name).is_file()]
    if len(present) != 1 or present[0].suffix == ".py":
        from tether.spec.loader import load_pipeline

        return load_pipeline(root)  # the DSL may import anything; errors come from the loader
    source = present[0]
    key = f"{__version__}:{source.name}:{blake3.blake3(source.read_bytes()).hexdigest()}"
    try:
        cached = json.loads(cache_file.read_text())
        if cached["key"] == key:
            return pipeline_from_json(source, cached["spec"], cached["lines"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from tether.spec.loader import load_pipeline

    pipeline = load_pipeline(root)
    lines = {name: stage.line for name, stage in pipeline.stages.items()}
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        write_text(
            cache_file,
            json.dumps({"key": key, "spec": pipeline.to_json(), "lines": lines}),
            fsync=False,
        )
    return pipeline


def pipeline_from_json(
    source: Path, spec: dict[str, Any], lines: dict[str, int | None]
) -> Pipeline:
    """Rebuild a Pipeline from its normalized JSON form."""
    stages = {
        name: Stage(
            name=name,
            cmd=tuple(body["cmd"]),
            wdir=body["wdir"],
            deps=tuple(body["deps"]),
            outs=tuple(body["outs"]),
            params=tuple(ParamRef(p["file"], p["key"]) for p in body["params"]),
            metrics=tuple(body["metrics"]),
            plots=tuple(body["plots"]),
            env=MappingProxyType(dict(body["env"])),
            timeout=body["timeout"],
            stall_timeout=body["stall_timeout"],
            expected=body["expected"],
            retries=body["retries"],
            retry_on=tuple(body["retry_on"]),
            require=tuple(body.get("require", ())),
            line=lines.get(name),
        )
        for name, body in spec["stages"].items()
    }
    metrics = {
        name: MetricRule(
            name=name,
            direction=rule["direction"],
            tolerance_kind=rule["tolerance"]["kind"],
            tolerance=rule["tolerance"]["value"],
            warn_kind=(rule.get("warn") or {}).get("kind"),
            warn=(rule.get("warn") or {}).get("value"),
            gate=rule.get("gate", True),
            allow_missing=rule.get("allow_missing", False),
        )
        for name, rule in spec["metrics"].items()
    }
    data = {
        name: DataSource(name=name, source=body["source"], path=body["path"],
                         subset=MappingProxyType(dict(body["subset"])), prepare=body["prepare"])
        for name, body in spec.get("data", {}).items()
    }
    return Pipeline(source=source, stages=stages, metrics=metrics, data=data)
