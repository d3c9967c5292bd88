"""Push to run, without a CI server: the following worker's loop and `tether run --push`.

`follow` alternates a follow pass (`queue/follow.py`: list the remote, claim new
commits, queue them), a run of the embedded worker until its queues are idle (when a
followed entry is pending or anything it can run waits there), and a publish: each
finished followed entry's experiment ref and outputs go back to the remote, and the
experiment is gated against the main build (the main branch fetched from the followed
remote first); the verdict is added to the commit's claim ref. Throughout, a tick
thread fires the project's schedules as every worker does (`feedback.scheduler`).

`push_for_feedback` snapshots the workspace (HEAD plus uncommitted changes) as one
commit with HEAD as parent and pushes it as a new branch `exp/<name>`; HEAD, the index
and the user's branches are untouched. `wait_for_result` polls the remote until an
experiment recorded against that commit appears.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tether.config import load_config
from tether.errors import GitStateError, TetherError, TransferRejected, UsageError
from tether.feedback.gate import Gate, GateResult, gate_experiments
from tether.feedback.history import load_settings, main_branch
from tether.gitstore.git import Git, ident_of
from tether.gitstore.names import generate_name, validate_name
from tether.layout import EXPS_REFS, FOLLOW_REFS
from tether.queue.base import FINAL, WAITING, QueueBackend, can_run
from tether.queue.follow import (
    DEFAULT_BRANCHES,
    STAGES_TRAILER,
    Follower,
    FollowPass,
    Published,
    remote_branches,
    remote_slug,
)
from tether.queue.timing import Ticker
from tether.queue.worker import Worker, WorkerOptions, WorkerSummary
from tether.structs import field, replace, struct

DEFAULT_PREFIX = "exp/"
PUSH_TRAILER = "Tether-Push"


@struct
class FollowOptions:
    remote: str
    patterns: list[str] = field(default_factory=lambda: list(DEFAULT_BRANCHES))
    interval: float = 30.0
    once: bool = False
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    gate: bool = True


@struct
class FollowedResult:
    """A followed commit's experiment, pushed back and gated."""

    published: Published
    gate: GateResult | None = None
    gate_error: str | None = None


def follow(
    root: Path, backend: QueueBackend, options: FollowOptions, *,
    on_pass: Callable[[FollowPass], None] | None = None,
    on_result: Callable[[FollowedResult], None] | None = None,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Follow `options.remote` until `stop` is set or a signal drains the worker
    (with `options.once`: one pass, its runs and their publishing).

    `options.worker.on_tick` (the schedules) is called every `tick_every` seconds for
    the follower's whole life, between passes too; a tick that returns something
    (it enqueued) ends the wait for the next pass, so what it queued runs at once."""
    stop = stop or threading.Event()
    wake = threading.Event()
    tick = options.worker.on_tick

    def ticking(now: float) -> None:
        if tick is not None and not stop.is_set() and tick(now):
            wake.set()

    ticker = Ticker(ticking if tick is not None else None, options.worker.tick_every,
                    options.worker.clock)
    ticker.tick_now()  # what is due now is queued before the first pass looks (--once)
    ticker.start()
    try:
        return _follow_loop(root, backend, options, stop, wake, on_pass, on_result)
    finally:
        ticker.stop(5)


def _follow_loop(
    root: Path, backend: QueueBackend, options: FollowOptions, stop: threading.Event,
    wake: threading.Event, on_pass: Callable[[FollowPass], None] | None,
    on_result: Callable[[FollowedResult], None] | None,
) -> WorkerSummary:
    # The worker of a pass: the follower ticks the schedules itself, between passes too.
    run_options = replace(options.worker, exit_when_idle=True, on_tick=None)
    follower = Follower(root, options.remote, options.patterns, queue=run_options.queues[0],
                        clock=run_options.clock, tags=run_options.tags)
    summary = WorkerSummary()
    # Entries a follower here queued and never published (a worker stopped midway).
    pending = {e.id for e in follower.followed_entries(backend) if e.state not in FINAL}
    while True:
        wake.clear()
        found = follower.follow_once(backend)
        if on_pass is not None:
            on_pass(found)
        pending |= {e.id for e in found.entries}
        drained = False
        if (pending or claimable(backend, run_options)) and not stop.is_set():
            worker = Worker(root, backend, run_options)
            ran = worker.run()
            summary.ran += ran.ran
            for state, count in ran.outcomes.items():
                summary.outcomes[state] = summary.outcomes.get(state, 0) + count
            drained = worker.draining.is_set()
        entries = [e for e in (backend.get(i) for i in sorted(pending)) if e is not None]
        finished = [e for e in entries if e.state in FINAL]
        pending = {e.id for e in entries if e.state not in FINAL}
        for published in follower.publish(finished):
            result = _gated(root, options, follower, published)
            if on_result is not None:
                on_result(result)
        if options.once or drained or stop.is_set():
            return summary
        _pause(stop, wake, options.interval)
        if stop.is_set():
            return summary


def claimable(backend: QueueBackend, options: WorkerOptions) -> bool:
    """Is an entry this worker could run waiting in its queues (e.g. one a schedule
    queued, or `tether run --queue`)?"""
    waiting = backend.entries(states=WAITING, queues=options.queues)
    return any(can_run(entry.requires, options.tags) for entry in waiting)


def _pause(stop: threading.Event, wake: threading.Event, seconds: float) -> None:
    """Wait `seconds`, or until `stop` or `wake` is set."""
    end = time.monotonic() + seconds
    while not (stop.is_set() or wake.is_set()):
        left = end - time.monotonic()
        if left <= 0:
            return
        wake.wait(min(left, 0.2))


def _gated(root: Path, options: FollowOptions, follower: Follower,
           published: Published) -> FollowedResult:
    result = FollowedResult(published)
    if options.gate and published.status in ("new", "up-to-date"):
        try:
            result.gate = gate_followed(root, options.remote, str(published.entry.result_ref))
        except TetherError as exc:
            result.gate_error = str(exc)
        verdict = result.gate.verdict if result.gate else f"not gated: {result.gate_error}"
        follower.note_verdict(published.entry.snapshot, f"tether: gate {verdict} "
                              f"({published.entry.name}, {published.entry.status})")
    return result


def gate_followed(root: Path, remote: str, ref: str) -> GateResult:
    """Gate the experiment at `ref` against the main build of `remote`'s main branch."""
    git = Git(root)
    settings = load_settings(root)
    named = remote in git.out("remote").split()
    main = main_branch(git, settings, remote if named else None)
    tracking = (f"refs/remotes/{remote}/{main}" if named
                else f"{FOLLOW_REFS}{remote_slug(remote)}-main/{main}")
    fetched = git.run("fetch", "--no-tags", "--no-write-fetch-head", remote,
                      f"+refs/heads/{main}:{tracking}", check=False)
    rev = tracking if fetched.returncode == 0 else main
    gate = Gate(git, settings, rev, remote, True)
    return gate_experiments(gate, [ref])[0]


# -- tether run --push -------------------------------------------------------------


@struct(frozen=True)
class PushedRun:
    """A workspace snapshot pushed for feedback."""

    remote: str
    branch: str
    name: str
    commit: str
    pickers: list[str]  # what will run it (CI workflows found here, a follower)


def push_prefix(root: Path) -> str:
    """`follow.prefix` of the project config (default `exp/`)."""
    section = load_config(root).get("follow") or {}
    prefix = section.get("prefix", DEFAULT_PREFIX) if isinstance(section, dict) else None
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise UsageError(f"follow.prefix in .tether/config.yaml must be a branch prefix such "
                         f"as exp/, found {prefix!r}")
    return prefix if prefix.endswith("/") else prefix + "/"


def upstream_remote(git: Git) -> str:
    """The remote of the current branch's upstream, else origin, else the only remote."""
    remotes = git.out("remote").split()
    branch = git.run("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.decode().strip()
    if branch:
        configured = git.run("config", f"branch.{branch}.remote", check=False)
        name = configured.stdout.decode().strip()
        if name in remotes:
            return name
    if "origin" in remotes:
        return "origin"
    if len(remotes) == 1:
        return remotes[0]
    raise UsageError(
        "no git remote to push to: the branch has no upstream and there is "
        + ("no remote" if not remotes else f"no origin among {', '.join(remotes)}"),
        hint="name one: tether run --push REMOTE")


def _ci_workflows(root: Path) -> list[str]:
    found = []
    workflows = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    for path in [*workflows, root / ".gitlab-ci.yml"]:
        try:
            if "tether" in path.read_text(errors="replace"):
                found.append(str(path.relative_to(root)))
        except OSError:
            continue
    return found


def push_for_feedback(
    cwd: Path, remote: str | None = None, name: str | None = None,
    stages: Sequence[str] = (), message: str = "",
) -> PushedRun:
    """Snapshot the workspace as one commit and push it as the new branch `exp/<name>`."""
    from tether.gitstore.git import find_root
    from tether.gitstore.snapshot import take_snapshot
    from tether.ids import new_id
    from tether.layout import SNAPSHOT_REFS
    from tether.record.redact import discover

    root = find_root(cwd)
    git = Git(root)
    head = git.head_commit()
    remote = remote or upstream_remote(git)
    prefix = push_prefix(root)
    taken = {branch.removeprefix(prefix) for branch in remote_branches(git, remote, prefix)}
    if name is not None:
        validate_name(name)
        if name in taken:
            raise UsageError(f"branch {prefix}{name} already exists on {remote}",
                             hint="choose another name with -n")
    else:
        name = generate_name(taken)
    secrets = discover(root=root)
    snapshot = take_snapshot(
        git, root, head, ref=f"{SNAPSHOT_REFS}push-{new_id()}",
        ident=ident_of(git.run("var", "GIT_COMMITTER_IDENT", check=False)), secrets=secrets,
        label="pushed snapshot")
    try:
        trailers = f"{PUSH_TRAILER}: {name}\n"
        if stages:
            trailers += f"{STAGES_TRAILER}: {', '.join(stages)}\n"
        text = secrets.scrub(message.strip()) + "\n\n" if message.strip() else ""
        commit = git.out("commit-tree", f"{snapshot.commit}^{{tree}}", "-p", head, "-m",
                         f"tether: push for feedback {name}\n\n{text}{trailers}")
        branch = f"{prefix}{name}"
        proc = git.run("push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:",
                       remote, f"{commit}:refs/heads/{branch}", check=False)
    finally:
        git.run("update-ref", "-d", snapshot.ref, check=False)
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
        raise TransferRejected(f"pushing {branch} to {remote} failed: "
                               f"{said[-1] if said else proc.returncode}",
                               hint="another push took the name? choose one with -n")
    from tether.share.sharelog import PUSH, log_transfer

    log_transfer(PUSH, remote, [branch], exp=name, branch=branch, commit=commit[:10])
    return PushedRun(remote, branch, name, commit, _ci_workflows(root))


def wait_for_result(
    root: Path, remote: str, commit: str, *, poll: float = 2.0,
    timeout: float | None = None, progress: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """The experiment refs recorded against `commit` on `remote`, once there are any."""
    git = Git(root)
    started = clock()
    while True:
        out = git.run("ls-remote", "--refs", remote, f"{EXPS_REFS}{commit}/*", check=False)
        refs = [line.partition("\t")[2] for line in out.stdout.decode().splitlines()]
        if refs:
            return sorted(refs)
        elapsed = clock() - started
        if timeout is not None and elapsed >= timeout:
            raise GitStateError(
                f"no experiment for {commit[:10]} appeared on {remote} within {timeout:g}s",
                hint="is a follower running (tether worker --follow)? the result can be "
                f"pulled later: tether pull {remote} --baseline {commit[:10]}")
        if progress is not None:
            progress(elapsed)
        sleep(poll)


# -- tether gc --remote-branches ----------------------------------------------------


@struct(frozen=True)
class StaleBranch:
    branch: str
    commit: str
    deleted: bool  # False: a dry run, or the remote refused (someone moved it meanwhile)


def collect_push_branches(
    root: Path, remote: str | None = None, *, older_than: float = 0.0, dry: bool = False,
    now: float | None = None,
) -> list[StaleBranch]:
    """Delete the remote's `exp/` branches that `tether run --push` made, whose commit has
    a recorded experiment there and is older than `older_than` seconds. A branch whose tip
    is not such a push (someone committed on it: it became a real branch) is kept, and a
    branch that moved since it was listed is not deleted (a lease on its old tip)."""
    git = Git(root)
    now = time.time() if now is None else now
    remote = remote or upstream_remote(git)
    prefix = push_prefix(root)
    tips = remote_branches(git, remote, prefix)
    if not tips:
        return []
    out = git.out("ls-remote", "--refs", remote,
                  *(f"{EXPS_REFS}{sha}/*" for sha in set(tips.values())))
    recorded = {line.partition("\t")[2].removeprefix(EXPS_REFS).partition("/")[0]
                for line in out.splitlines()}
    candidates = {b: sha for b, sha in tips.items() if sha in recorded}
    if not candidates:
        return []
    scratch = f"{FOLLOW_REFS}gc-{os.getpid()}/"
    git.run("fetch", "--no-tags", "--no-write-fetch-head", remote,
            *(f"+refs/heads/{b}:{scratch}{b}" for b in candidates))
    try:
        shown = git.out("log", "--no-walk=unsorted", "--format=%H%x00%ct%x00%B%x00",
                        *set(candidates.values()))
    finally:
        for line in git.for_each_ref(scratch):
            git.run("update-ref", "-d", line.split(" ")[0], check=False)
    parts = shown.split("\x00")
    info = {parts[i].strip(): (float(parts[i + 1]), parts[i + 2])
            for i in range(0, len(parts) - 2, 3)}
    doomed = {b: sha for b, sha in candidates.items()
              if sha in info and f"\n{PUSH_TRAILER}:" in "\n" + info[sha][1]
              and info[sha][0] <= now - older_than}
    if dry or not doomed:
        return [StaleBranch(b, sha, False) for b, sha in sorted(doomed.items())]
    proc = git.run("push", "--porcelain", "--no-verify",
                   *(f"--force-with-lease=refs/heads/{b}:{sha}" for b, sha in doomed.items()),
                   remote, *(f":refs/heads/{b}" for b in doomed), check=False)
    gone = {line.split("\t")[1].rpartition(":")[2].removeprefix("refs/heads/")
            for line in proc.stdout.decode(errors="replace").splitlines()
            if line.startswith("-\t")}
    return [StaleBranch(b, sha, b in gone) for b, sha in sorted(doomed.items())]
