"""One attempt of one queue entry, in its own process: `python -m tether.queue.child JOB`.

A worker starts this in the entry's worktree. Running the runner in a child
process lets the worker stop it (SIGTERM: stop and record as interrupted),
abandon it without recording (SIGUSR1, or the worker dying: the attempt will be
run again elsewhere) and survive its crashes; the per-entry environment
(`TETHER_SEED`) and working directory stay out of the worker's process.

The child holds an exclusive lock on the entry while it lives, so a new
attempt never starts while an abandoned one is still stopping, and it checks
first whether the entry's run id is already recorded (exactly-once).
It reports JSON lines (events, then one `result`) on the file descriptor the
job names; its stdout and stderr are the attempt's log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from tether.errors import TetherError
from tether.logs import bind, get_logger
from tether.status import FAILED, STALLED, TIMEOUT

# What a timed-out or stalled stage counts as for `retry_on` (tether's exit codes).
STATUS_CODES = {TIMEOUT: 124, STALLED: 125}


class _Abandoned(Exception):
    """The attempt is given up without recording: a new attempt will run it."""


class _Retry(Exception):
    """A stage failed retryably and attempts remain: do not record this attempt."""

    def __init__(self, stage: str, status: str, exit_code: int | None) -> None:
        super().__init__(stage)
        self.stage, self.status, self.exit_code = stage, status, exit_code


class _Stopped(Exception):
    """SIGTERM arrived outside the runner's stage loop."""


class _Attempt:
    def __init__(self, job: dict[str, Any], channel: BinaryIO) -> None:
        self.job = job
        self.channel = channel
        self.abandoned = threading.Event()
        self.parent = os.getppid()
        self.planned = False  # past planning: SIGTERM is the runner's to handle
        self.stop_requested = False

    def send(self, **message: Any) -> None:
        self.channel.write(json.dumps(message).encode() + b"\n")
        self.channel.flush()

    def abandon(self) -> None:
        if not self.abandoned.is_set():
            self.abandoned.set()
            os.kill(os.getpid(), signal.SIGTERM)  # the runner stops the stage on SIGTERM

    def watch_parent(self) -> None:
        while not self.abandoned.is_set():
            if os.getppid() != self.parent:
                self.abandon()
                return
            time.sleep(0.2)

    def on_event(self, event: Any) -> None:
        if self.abandoned.is_set():
            raise _Abandoned()
        if event.kind == "plan":
            self.planned = True
            return
        if event.kind == "stage_start" and self.stop_requested:
            raise _Stopped()  # SIGTERM came before the runner's stage loop listened
        detail = str(event.detail) if event.detail not in (None, "") else None
        get_logger("tether.queue.child").info(event.kind, stage=event.stage, detail=detail)
        try:
            expected = event.data.get("expected") if event.kind == "started" else None
            self.send(kind=event.kind, stage=event.stage, detail=str(event.detail),
                      **({"expected": expected} if isinstance(expected, dict) else {}))
        except BrokenPipeError:  # the worker is gone
            self.abandon()
            raise _Abandoned() from None
        if event.kind == "stage_end" and event.detail in (FAILED, *STATUS_CODES):
            record = event.data["record"]
            self._maybe_retry(event.stage, event.detail, record.exit_code)

    def _maybe_retry(self, stage_name: str, status: str, exit_code: int | None) -> None:
        from tether.project import load_project_pipeline

        job = self.job
        pipeline = load_project_pipeline(Path.cwd(), job["command"], job["limits"], Path.cwd())
        stage = pipeline.stages.get(stage_name)
        if stage is None:
            return
        code = STATUS_CODES.get(status, exit_code)
        matches = not stage.retry_on or code in stage.retry_on
        if matches and job["stage_failures"].get(stage_name, 0) < stage.retries:
            raise _Retry(stage_name, status, exit_code)


def _recorded(job: dict[str, Any]) -> dict[str, Any] | None:
    """The result of an earlier attempt that already recorded this run id, if any."""
    from tether.gitstore.experiments import read_record
    from tether.gitstore.git import Git
    from tether.layout import exp_ref
    from tether.record.record import InvalidRecord

    git = Git(Path.cwd())
    for name in (job["name"], f"{job['name']}-{job['run_id'][-6:]}"):
        ref = exp_ref(job["baseline"], name)
        commit = git.ref_value(ref)
        if not commit:
            continue
        try:
            record = read_record(git, commit)
        except InvalidRecord:
            continue  # not this run's: it writes valid records
        if record.id == job["run_id"]:
            return {"outcome": "recorded", "status": record.status, "ref": ref, "already": True}
    return None


def _restore_inputs(job: dict[str, Any]) -> None:
    """Bring inputs the snapshot lacks from the repository cache (see queue.inputs)."""
    from tether.gitstore.git import Git, find_root
    from tether.lockfile import read_lock
    from tether.project import load_project_pipeline, object_store, open_remote
    from tether.queue.inputs import restore_cached_inputs

    root = find_root(Path.cwd())
    if job["command"] is not None:  # a bare command declares no dependencies: data only
        from tether.cache.tracked import materialize, work_tree_pointers

        restored, _ = materialize(root, work_tree_pointers(Git(root)), object_store(root),
                                  remote=lambda: open_remote(root))
    else:
        pipeline = load_project_pipeline(root, None, job["limits"], Path.cwd())
        order = pipeline.order(list(job["targets"]) or None)
        restored = restore_cached_inputs(root, pipeline, order, read_lock(root),
                                         object_store(root))
    if restored:
        get_logger("tether.queue.child").info("inputs_restored", paths=",".join(restored))


def _run(attempt: _Attempt) -> dict[str, Any]:
    from tether.execute.runner import RunContext, RunOptions, run

    job = attempt.job
    found = _recorded(job)
    if found:
        return found
    argv = ["tether", "run", "-n", job["name"], *[a for o in job["overrides"] for a in ("-S", o)],
            *job["targets"], *(["--", *job["command"]] if job["command"] is not None else [])]
    _restore_inputs(job)
    options = RunOptions(
        targets=list(job["targets"]), overrides=list(job["overrides"]), name=job["name"],
        message=job["message"], force=job["force"], command=job["command"],
        echo=sys.stdout.buffer, on_event=attempt.on_event, argv=argv,
        command_limits=job["limits"],
    )
    context = RunContext(baseline=job["baseline"], run_id=job["run_id"],
                         state_root=Path(job["state_root"]), reproduces=job.get("reproduces"))
    result = run(Path.cwd(), options, context)
    assert result.record is not None and result.ref is not None
    return {"outcome": "recorded", "status": result.record.status, "ref": result.ref.ref}


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    with bind(**job.get("log_context", {})):  # the worker's context of this attempt
        return _attempt(job)


def _attempt(job: dict[str, Any]) -> int:
    channel = os.fdopen(job["channel_fd"], "wb")
    attempt = _Attempt(job, channel)

    def on_term(signum: int, frame: FrameType | None) -> None:
        attempt.stop_requested = True
        if not attempt.planned:
            raise _Stopped()
        # Past planning and outside the stage loop: recording; let it finish.

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, lambda signum, frame: attempt.abandon())
    try:
        lock = open(job["lock_path"], "a")  # noqa: SIM115 - held until the process exits
        fcntl.flock(lock, fcntl.LOCK_EX)
        threading.Thread(target=attempt.watch_parent, daemon=True).start()
        result = _run(attempt)
    except (_Abandoned, _Stopped) as exc:
        gone = attempt.abandoned.is_set() or isinstance(exc, _Abandoned)
        result = {"outcome": "abandoned" if gone else "stopped"}
    except _Retry as exc:
        result = {"outcome": "retry", "stage": exc.stage, "status": exc.status,
                  "exit_code": exc.exit_code}
    except TetherError as exc:
        get_logger("tether.queue.child").error("run_error", error=str(exc),
                                               exit_code=exc.exit_code)
        result = {"outcome": "error", "error": str(exc)}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):
        attempt.send(kind="result", **result)
    return 0


def warm_main() -> int:
    """Import everything a run needs, then wait for the job on stdin (see queue.warm)."""
    import structlog  # noqa: F401 - the child logs its events: not imported per attempt

    import tether.execute.runner  # noqa: F401 - the point: imports happen before the job
    from tether.record.environment import installed_packages

    installed_packages()  # cached for the process: the record needs it at the end
    line = sys.stdin.buffer.readline()
    if not line:
        return 0  # the worker let this child go unused
    order = json.loads(line)
    os.environ.clear()
    os.environ.update(order["env"])
    os.chdir(order["cwd"])
    log = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(devnull)
    return main(order["job"])


if __name__ == "__main__":
    sys.exit(warm_main() if sys.argv[1] == "--warm" else main(sys.argv[1]))
