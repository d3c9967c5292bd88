"""The validated pipeline: stages, metric rules, and the dependency graph between stages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from tether.errors import SpecError, close_matches
from tether.spec.graph import topological_order, upstream_map
from tether.structs import field, struct

SPEC_VERSION = 1


@struct(frozen=True)
class ParamRef:
    """One parameter a stage reads: a dotted `key` of a params `file` (relative to the root)."""

    file: str
    key: str


@struct(frozen=True)
class MetricRule:
    """How a metric is judged against a baseline: which direction is better, and by how much."""

    name: str
    direction: Literal["min", "max"]
    tolerance_kind: Literal["abs", "rel"] = "abs"
    tolerance: float = 0.0
    # A band past the tolerance that `tether gate` reports as a warning, not a failure.
    warn_kind: Literal["abs", "rel"] | None = None
    warn: float | None = None
    gate: bool = True  # False: `tether gate` reports the metric but never fails on it
    allow_missing: bool = False  # True: missing in a run is no regression

    def to_json(self) -> dict[str, Any]:
        """The normalized form of this rule (the gate's keys only when not the default)."""
        result: dict[str, Any] = {
            "direction": self.direction,
            "tolerance": {"kind": self.tolerance_kind, "value": self.tolerance},
        }
        if self.warn is not None:
            result["warn"] = {"kind": self.warn_kind, "value": self.warn}
        if not self.gate:
            result["gate"] = False
        if self.allow_missing:
            result["allow_missing"] = True
        return result


@struct(frozen=True)
class Stage:
    """One stage of a pipeline; every path is normalized and relative to the project root."""

    name: str
    cmd: tuple[str, ...]
    wdir: str = "."
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    params: tuple[ParamRef, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    timeout: float | None = None
    stall_timeout: float | None = None
    expected: float | None = None
    retries: int = 0
    retry_on: tuple[int, ...] = ()
    require: tuple[str, ...] = ()  # worker tags a queued run of this stage needs
    line: int | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The normalized form of this stage (every key present)."""
        return {
            "cmd": list(self.cmd),
            "wdir": self.wdir,
            "deps": list(self.deps),
            "outs": list(self.outs),
            "params": [{"file": p.file, "key": p.key} for p in self.params],
            "metrics": list(self.metrics),
            "plots": list(self.plots),
            "env": dict(self.env),
            "timeout": self.timeout,
            "stall_timeout": self.stall_timeout,
            "expected": self.expected,
            "retries": self.retries,
            "retry_on": list(self.retry_on),
            "require": list(self.require),
        }


@struct(frozen=True)
class DataSource:
    """One declared data source: bytes fetched from `source` into the cache, pinned in
    tether.lock, and put at `path`; with `prepare`, the command that derives `path` from
    the fetched bytes and the `subset` values (see docs/spec.md, `data:`)."""

    name: str
    source: str  # a URL fsspec opens (s3://, https://, file://) or an absolute local path
    path: str  # relative to the project root, checked by the path guard
    subset: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    prepare: str | None = None
    line: int | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "path": self.path, "subset": dict(self.subset),
                "prepare": self.prepare}


@struct(frozen=True)
class Pipeline:
    """A validated, acyclic pipeline read from `source`; stages keep declaration order."""

    source: Path
    stages: dict[str, Stage]
    metrics: dict[str, MetricRule] = field(default_factory=dict)
    data: dict[str, DataSource] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The normalized form other code relies on (see docs/spec.md); `data` only when
        the spec declares sources."""
        body: dict[str, Any] = {
            "version": SPEC_VERSION,
            "stages": {name: stage.to_json() for name, stage in self.stages.items()},
            "metrics": {name: rule.to_json() for name, rule in self.metrics.items()},
        }
        if self.data:
            body["data"] = {name: source.to_json() for name, source in self.data.items()}
        return body

    @cached_property
    def _upstream(self) -> dict[str, set[str]]:
        return upstream_map(self.stages)

    @cached_property
    def _downstream(self) -> dict[str, set[str]]:
        downstream: dict[str, set[str]] = {name: set() for name in self.stages}
        for name, ups in self._upstream.items():
            for up in ups:
                downstream[up].add(name)
        return downstream

    def upstream(self, name: str) -> set[str]:
        """Stages `name` directly depends on."""
        return set(self._upstream[self._known(name)])

    def downstream(self, name: str) -> set[str]:
        """Stages that directly depend on `name`."""
        return set(self._downstream[self._known(name)])

    def order(self, targets: Sequence[str] | None = None) -> list[str]:
        """Stages in run order: all of them, or `targets` and everything they depend on.

        A target naming a foreach/matrix template (`train`) stands for all its stages.
        """
        if targets is None:
            return topological_order(self.stages, self._upstream)
        wanted: set[str] = set()
        pending = [name for target in targets for name in self._expand_target(target)]
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self._upstream[name])
        return topological_order(self.stages, self._upstream, only=wanted)

    def requirements(self, stages: Sequence[str]) -> tuple[str, ...]:
        """The worker tags needed to run `stages` (the union of their `require`), sorted."""
        return tuple(sorted({tag for name in stages for tag in self.stages[name].require}))

    def _expand_target(self, target: str) -> list[str]:
        if target in self.stages:
            return [target]
        generated = [name for name in self.stages if name.startswith(target + "@")]
        return generated or [self._known(target)]

    def _known(self, name: str) -> str:
        if name in self.stages:
            return name
        close = close_matches(name, list(self.stages), n=1)
        known = ", ".join(list(self.stages)[:20])
        hint = f"did you mean {close[0]!r}?" if close else f"known stages: {known}"
        raise SpecError(f"{self.source.name}: unknown stage {name!r}", hint=hint)

