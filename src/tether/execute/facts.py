"""What a run asks git before its stages start, asked all at once and as early as possible.

`tether run` starts these git processes before it imports the runner, so git
answers while Python is still loading: the repository state, the committer
identity, the uncommitted diff and untracked files, and (once the baseline is
known) the experiment names already taken.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tether.gitstore.experiments import read_taken_names, start_taken_names
from tether.gitstore.git import REPO_STATE_ARGV, Git, GitJob, RepoState, ident_of, repo_state
from tether.layout import STATE_DIR

# What changed since HEAD, and the untracked files, for the whole work tree
# whatever directory git runs in (paths relative to its top level).
DIFF_ARGV = ("diff", "HEAD", "--binary", "--", ":(top)", f":(top,exclude){STATE_DIR}")
UNTRACKED_ARGV = ("ls-files", "-o", "--exclude-standard", "-z", "--full-name", "--", ":(top)")


class RunFacts:
    """The git facts of one run in `cwd`, recorded against `baseline` (default: HEAD)."""

    def __init__(self, cwd: Path, baseline: str | None = None) -> None:
        self.cwd = cwd
        self._baseline = baseline
        starter = Git(cwd)
        self._jobs: list[GitJob] = []
        self._state_job = self._track(starter.start(*REPO_STATE_ARGV))
        self._ident_job = self._track(starter.start("var", "GIT_COMMITTER_IDENT"))
        self._diff_job = self._track(starter.start(*DIFF_ARGV))
        self._untracked_job = self._track(starter.start(*UNTRACKED_ARGV))
        self._state: RepoState | None = None
        self._state_error: BaseException | None = None
        self._taken_job: GitJob | None = None
        # The names question needs the baseline: asked the moment rev-parse answers.
        self._resolver = threading.Thread(target=self._resolve, daemon=True)
        self._resolver.start()

    def _track(self, job: GitJob) -> GitJob:
        self._jobs.append(job)
        return job

    def _resolve(self) -> None:
        try:
            state = repo_state(self.cwd, self._state_job)
            baseline = self._baseline or state.head
            self._taken_job = self._track(start_taken_names(Git(state.root), baseline))
            self._state = state
        except BaseException as exc:  # raised to whoever asks for the state
            self._state_error = exc

    @property
    def state(self) -> RepoState:
        """Root, HEAD and branch (a clear GitStateError outside a usable repository)."""
        self._resolver.join()
        if self._state_error is not None:
            raise self._state_error
        assert self._state is not None
        return self._state

    @property
    def baseline(self) -> str:
        return self._baseline or self.state.head

    def taken_names(self) -> set[str]:
        """Experiment names already used under the baseline."""
        self.state  # noqa: B018 -- waits for the question to be asked
        assert self._taken_job is not None
        return read_taken_names(self._taken_job, self.baseline)

    def committer_ident(self) -> str:
        """`Name <email>` for tether's commits: the user's, or tether's own when unset."""
        return ident_of(self._ident_job.result(check=False))

    def code(self) -> dict[str, Any]:
        """The baseline commit, the uncommitted diff and the untracked files at start."""
        # Imported here: this module loads before the runner so that git starts early.
        from tether.record.code import describe_code

        untracked = self._untracked_job.result().stdout.decode(errors="replace")
        return describe_code(self.baseline, self._diff_job.result().stdout, untracked)

    def close(self) -> None:
        """Reap every git process, finished or not (a run that stopped early)."""
        self._resolver.join()
        for job in self._jobs:
            job.cancel()
