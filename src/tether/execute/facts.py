"""What a run asks git before its stages start, asked all at once and as early as possible.

`tether run` starts these git processes before it imports the runner, so git
answers while Python is still loading: the repository state, the committer
identity, the uncommitted diff and untracked files, and (once the baseline is
known) the experiment names already taken.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.gitstore.experiments import read_taken_names, start_taken_names
from tether.gitstore.fastrecord import start_status
from tether.gitstore.git import REPO_STATE_ARGV, Git, GitJob, RepoState, ident_of, repo_state
from tether.layout import QUEUE_REFS, STATE_DIR

if TYPE_CHECKING:
    from tether.gitstore.snapshot import Snapshot

# What changed since HEAD, and the untracked files, for the whole work tree
# whatever directory git runs in (paths relative to its top level).
DIFF_ARGV = ("diff", "HEAD", "--binary", "--", ":(top)", f":(top,exclude){STATE_DIR}")
UNTRACKED_ARGV = ("ls-files", "-o", "--exclude-standard", "-z", "--full-name", "--", ":(top)")


class RunFacts:
    """The git facts of one run in `cwd`, recorded against `baseline` (default: HEAD).

    `code`: the diff and untracked files, which a run records. `snapshot`: an
    enqueue's snapshot of the workspace (HEAD plus what differs from it) committed
    in the background; if nobody takes it with `snapshot()`, `close()` drops it.
    """

    def __init__(
        self, cwd: Path, baseline: str | None = None, *, code: bool = True,
        snapshot: bool = False,
    ) -> None:
        self.cwd = cwd
        self._baseline = baseline
        starter = Git(cwd)
        self._jobs: list[GitJob] = []
        self._state_job = self._track(starter.start(*REPO_STATE_ARGV))
        self._ident_job = self._track(starter.start("var", "GIT_COMMITTER_IDENT"))
        self._diff_job = self._track(starter.start(*DIFF_ARGV)) if code else None
        self._untracked_job = self._track(starter.start(*UNTRACKED_ARGV)) if code else None
        self._want_snapshot = snapshot
        self._snapshot: Snapshot | None = None
        self._snapshot_error: BaseException | None = None
        self._snapshot_taken = False
        self._state: RepoState | None = None
        self._state_error: BaseException | None = None
        self._taken_job: GitJob | None = None
        # What needs the top level or the baseline is asked the moment rev-parse answers.
        self._ready = threading.Event()  # the state is known
        self._asked = threading.Event()  # ... and the questions that need it are asked
        # The resolver needs the GIL only for moments, between git processes, while the
        # main thread imports: by default it would wait up to 5 ms for each of them.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, 0.0005))
        self._resolver = threading.Thread(target=self._resolve, daemon=True)
        self._resolver.start()

    def _track(self, job: GitJob) -> GitJob:
        self._jobs.append(job)
        return job

    def _resolve(self) -> None:
        try:
            state = repo_state(self.cwd, self._state_job)
        except BaseException as exc:  # raised to whoever asks for the state
            self._state_error = exc
            self._ready.set()
            self._asked.set()
            sys.setswitchinterval(self._switch_interval)
            return
        self._state = state
        self._ready.set()
        git = Git(state.root)
        try:
            self._taken_job = self._track(start_taken_names(git, self._baseline or state.head))
            status = self._track(start_status(git, state.root)) if self._want_snapshot else None
        except BaseException as exc:  # e.g. out of processes: raised to whoever asks
            self._state_error = exc
            status = None
        finally:
            self._asked.set()
        if status is not None:
            try:
                from tether.gitstore.snapshot import take_snapshot
                from tether.ids import new_id
                from tether.record.redact import discover

                # Pushed wherever the queue's workers fetch from: secret values replaced.
                self._snapshot = take_snapshot(
                    git, state.root, state.head, ref=f"{QUEUE_REFS}{new_id()}", status=status,
                    ident=self.committer_ident(), secrets=discover(root=state.root),
                )
            except BaseException as exc:  # raised to whoever asks for the snapshot
                self._snapshot_error = exc
        sys.setswitchinterval(self._switch_interval)

    @property
    def state(self) -> RepoState:
        """Root, HEAD and branch (a clear GitStateError outside a usable repository)."""
        self._ready.wait()
        if self._state_error is not None:
            raise self._state_error
        assert self._state is not None
        return self._state

    @property
    def baseline(self) -> str:
        return self._baseline or self.state.head

    def taken_names(self) -> set[str]:
        """Experiment names already used under the baseline."""
        self._asked.wait()
        self.state  # noqa: B018 -- raises what went wrong, if anything did
        assert self._taken_job is not None
        return read_taken_names(self._taken_job, self.baseline)

    def committer_ident(self) -> str:
        """`Name <email>` for tether's commits: the user's, or tether's own when unset."""
        return ident_of(self._ident_job.result(check=False))

    def snapshot(self) -> Snapshot:
        """The workspace snapshot (RunFacts(snapshot=True)); the caller now owns its ref."""
        self.state  # noqa: B018 -- a state error comes first
        self._resolver.join()
        if self._snapshot_error is not None:
            raise self._snapshot_error
        assert self._snapshot is not None, "RunFacts(snapshot=True) takes it"
        self._snapshot_taken = True
        return self._snapshot

    def code(self) -> dict[str, Any]:
        """The baseline commit, the uncommitted diff and the untracked files at start."""
        # Imported here: this module loads before the runner so that git starts early.
        from tether.record.code import describe_code

        assert self._diff_job is not None and self._untracked_job is not None
        untracked = self._untracked_job.result().stdout.decode(errors="replace")
        return describe_code(self.baseline, self._diff_job.result().stdout, untracked)

    def close(self) -> None:
        """Reap every git process, finished or not, and drop a snapshot nobody took."""
        self._resolver.join()
        for job in self._jobs:
            job.cancel()
        if self._snapshot is not None and not self._snapshot_taken and self._state is not None:
            Git(self._state.root).run(
                "update-ref", "-d", self._snapshot.ref, self._snapshot.commit, check=False
            )
