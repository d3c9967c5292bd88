"""Run one stage of a run under the supervisor, and describe how it went."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from tether.execute.supervisor import Limits, SupervisorEvent, supervise
from tether.record.record import StageRecord
from tether.record.redact import Secrets
from tether.spec import Stage
from tether.status import SUCCESS


def stage_environment(
    stage: Stage, base: Mapping[str, str], tether_vars: Mapping[str, str]
) -> dict[str, str]:
    """The environment a stage process sees."""
    env = dict(base)
    env.update(stage.env)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(tether_vars)
    return env


def run_stage(
    stage: Stage,
    *,
    workspace: Path,
    env: dict[str, str],
    log_path: Path,
    record: StageRecord,
    echo: BinaryIO | None,
    on_event: Callable[[SupervisorEvent], None] | None,
    stop: threading.Event | None,
    secrets: Secrets,
    keep_fds: tuple[int, ...] = (),
) -> StageRecord:
    """Run each of the stage's commands in turn; stop at the first that does not succeed."""
    cwd = workspace / stage.wdir
    limits = Limits(
        timeout=stage.timeout, stall_timeout=stage.stall_timeout, expected=stage.expected
    )
    record.cmd = list(stage.cmd)
    started: float | None = None
    duration = 0.0
    for command in stage.cmd:
        outcome = supervise(
            command,
            cwd=cwd,
            env=env,
            log_path=log_path,
            limits=limits,
            echo=echo,
            on_event=on_event,
            stop=stop,
            keep_fds=keep_fds,
        )
        started = outcome.started_at if started is None else started
        duration += outcome.duration
        record.status = outcome.status
        record.exit_code = outcome.exit_code
        record.signal = outcome.signal
        record.ended_at = outcome.ended_at
        if outcome.status != SUCCESS:
            break
    record.started_at = started
    record.duration = duration
    secrets.scrub_file(log_path)
    return record
