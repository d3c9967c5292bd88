"""Decide which stages run: fingerprints, the lock file, and what is downstream."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import blake3

from tether.cache.hashing import StatCache
from tether.cache.runcache import RunCache
from tether.errors import ParamsError, SpecError
from tether.layout import DEFAULT_PARAMS
from tether.lockfile import StageLock
from tether.parameters import Params
from tether.pathguard import overlaps
from tether.spec import Pipeline, Stage
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.record.redact import Secrets


@struct(frozen=True)
class StageFingerprint:
    """What a stage is about to consume: the basis of the run/skip decision."""

    digest: str
    deps: dict[str, str | None]
    params: dict[str, Any]


@struct
class StageDecision:
    name: str
    action: Literal["run", "skip", "restore"]
    reasons: list[str] = field(default_factory=list)


@struct
class Plan:
    decisions: list[StageDecision]


def param_label(file: str, key: str) -> str:
    return key if file == DEFAULT_PARAMS else f"{file}:{key}"


def stage_params(stage: Stage, params: Params) -> dict[str, Any]:
    """The values of the params a stage declares, by label."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for ref in stage.params:
        try:
            values[param_label(ref.file, ref.key)] = params.get(ref.file, ref.key)
        except KeyError:
            missing.append(
                f"stage {stage.name!r} declares param {param_label(ref.file, ref.key)!r}, "
                f"but {ref.file} has no such key"
            )
    if missing:
        raise ParamsError(missing, hint="add the key to the params file or fix the stage's params")
    return values


def fingerprint(stage: Stage, root: Path, params: Params, cache: StatCache) -> StageFingerprint:
    """Hash the stage's command, dependency contents and param values."""
    deps = {dep: cache.hash_path(root / dep) for dep in stage.deps}
    values = stage_params(stage, params)
    basis = {
        "cmd": list(stage.cmd),
        "wdir": stage.wdir,
        "env": dict(sorted(stage.env.items())),
        "deps": deps,
        "params": values,
        "outs": list(stage.outs),
    }
    seed = os.environ.get("TETHER_SEED")
    if seed is not None:
        # Every stage sees the seed of a `--repeat` copy: each seed is another run, not
        # one the run-cache may restore from a copy with another seed.
        basis["seed"] = seed
    digest = blake3.blake3(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()
    return StageFingerprint(digest=digest[:32], deps=deps, params=values)


def _why_changed(
    stage: Stage, fp: StageFingerprint, lock: StageLock, root: Path, cache: StatCache,
    secrets: Secrets | None = None,
) -> list[str]:
    reasons: list[str] = []
    # The lock holds the command with its secrets redacted.
    if list(stage.cmd) != lock.cmd and (
        secrets is None or secrets.scrub_json(list(stage.cmd)) != lock.cmd
    ):
        reasons.append("command changed")
    for dep, digest in fp.deps.items():
        if dep not in lock.deps:
            reasons.append(f"new dependency {dep}")
        elif lock.deps[dep] != digest:
            reasons.append(f"dependency {dep} changed")
    for dep in lock.deps:
        if dep not in fp.deps:
            reasons.append(f"dependency {dep} removed")
    for label, value in fp.params.items():
        if label not in lock.params:
            reasons.append(f"new param {label}")
        elif lock.params[label] != value:
            reasons.append(f"param {label} changed")
    for label in lock.params:
        if label not in fp.params:
            reasons.append(f"param {label} removed")
    if not reasons and fp.digest != lock.fingerprint:
        reasons.append("stage definition changed")
    for out in stage.outs:
        digest = cache.hash_path(root / out)
        if digest is None:
            reasons.append(f"output {out} missing")
        elif out in lock.outs and lock.outs[out] not in (None, digest):
            reasons.append(f"output {out} modified")
    return reasons


def make_plan(
    pipeline: Pipeline,
    order: list[str],
    root: Path,
    params: Params,
    lock: dict[str, StageLock],
    cache: StatCache,
    *,
    force: bool = False,
    run_cache: RunCache | None = None,
    secrets: Secrets | None = None,
    always: Collection[str] = (),
) -> Plan:
    """Decide run or skip for every stage in `order` (topological).

    The stages in `always` run whatever the lock and the run-cache say: a bare
    command declares no dependencies, so nothing could tell that it is unchanged.
    """
    produced = {out for stage in pipeline.stages.values() for out in stage.outs}
    produced |= {source.path for source in pipeline.data.values()}  # fetched for the run
    missing: list[str] = []
    for name in order:
        for dep in pipeline.stages[name].deps:
            if not (root / dep).exists() and not _produced_by_pipeline(dep, produced):
                missing.append(
                    f"stage {name!r} depends on {dep}, which does not exist and no stage produces"
                )
    if missing:
        raise SpecError(missing, hint="create the file, or add the stage that produces it")
    for name in order:
        stage_params(pipeline.stages[name], params)

    decisions: list[StageDecision] = []
    running: set[str] = set()
    for name in order:
        stage = pipeline.stages[name]
        reasons: list[str] = []
        if force:
            reasons.append("--force")
        elif name in always:
            reasons.append("a bare command always runs (it declares no dependencies)")
        upstream_running = sorted(pipeline.upstream(name) & running)
        if upstream_running:
            reasons.append("upstream " + ", ".join(upstream_running) + " will run")
        restorable: dict[str, Any] | None = None
        if not reasons:
            fp = fingerprint(stage, root, params, cache)
            previous = lock.get(name)
            reasons = (
                ["never run"]
                if previous is None
                else _why_changed(stage, fp, previous, root, cache, secrets)
            )
            if reasons and run_cache is not None:
                restorable = run_cache.get(fp.digest)
        if restorable is not None:
            running.add(name)
            source = (restorable.get("experiment") or {}).get("name", "an earlier run")
            decisions.append(
                StageDecision(name, "restore", [*reasons, f"same inputs as {source}"])
            )
        elif reasons:
            running.add(name)
            decisions.append(StageDecision(name, "run", reasons))
        else:
            decisions.append(StageDecision(name, "skip", ["unchanged"]))
    return Plan(decisions)


def _produced_by_pipeline(dep: str, produced: set[str]) -> bool:
    return any(overlaps(dep, out) for out in produced)
