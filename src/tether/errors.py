"""The one exception tree of tether, and the exit codes each error maps to.

Every error carries a message a user can act on: what was wrong, where, and
what to do. `tether.cli.main` is the only place that turns them into exit codes.
"""

from __future__ import annotations

from tether.status import FAILED, INTERRUPTED, STALLED, TIMEOUT

TYPE_CHECKING = False  # not imported from typing: training scripts import this module
if TYPE_CHECKING:
    from typing import ClassVar

# Exit codes, documented in the README ("Exit codes").
EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_SPEC = 3
EXIT_GIT_STATE = 4
EXIT_EXPERIMENT = 5
EXIT_GIT_COMMAND = 6
EXIT_QUEUE = 10
EXIT_CACHE_CORRUPT = 7
EXIT_REMOTE = 8
EXIT_DIVERGED = 9
EXIT_UNSAFE_PATH = 11
EXIT_TRANSFER_REJECTED = 12
EXIT_BUSY = 13
EXIT_LOCAL_STATE = 14
EXIT_MISSING_INPUT = 15
EXIT_REGRESSED = 16
EXIT_NO_BASELINE = 17
EXIT_NOT_REPRODUCED = 18
EXIT_DATA_SOURCE = 19
EXIT_MISSING_EXTRA = 20  # an optional feature's extra is not installed
EXIT_INTERNAL = 70
EXIT_TIMEOUT = 124
EXIT_STALLED = 125
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of the output went away


def close_matches(word: str, candidates: list[str], n: int = 1) -> list[str]:
    """The candidates closest to `word`, for "did you mean" hints in error messages."""
    import difflib  # only needed on the error path

    return difflib.get_close_matches(word, candidates, n=n)


class TetherError(Exception):
    """Base of every error tether raises on purpose."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(TetherError):
    """The command line itself is wrong (bad option value, conflicting flags)."""

    exit_code = EXIT_USAGE


class SpecError(TetherError):
    """`tether.yaml`, `tetherfile.py` or a params file is invalid.

    `problems` holds one line per problem, each naming file, line and key.
    """

    exit_code = EXIT_SPEC

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        count = len(self.problems)
        head = "invalid pipeline spec"
        body = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head} ({count} problem{'s' if count != 1 else ''}):\n{body}", hint=hint)


class ParamsError(SpecError):
    """A params file or a `-S` override is invalid."""

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        super().__init__(problems, hint=hint)
        body = "\n".join(f"  {p}" for p in self.problems)
        self.message = f"invalid params:\n{body}"
        self.args = (self.message,)


class GitStateError(TetherError):
    """The repository is not in a state tether can work with (no repo, no commit...)."""

    exit_code = EXIT_GIT_STATE


class GitError(TetherError):
    """A git command failed; the message names the command and git's own words."""

    exit_code = EXIT_GIT_COMMAND

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        command = "git " + " ".join(argv)
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"`{command}` failed: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class ExperimentError(TetherError):
    """An experiment name or reference is unknown, ambiguous or already taken."""

    exit_code = EXIT_EXPERIMENT


class RunFailed(TetherError):
    """A run finished, was recorded, and did not succeed.

    The exit code tells how it ended: failed, timeout, stalled or interrupted.
    """

    _codes: ClassVar[dict[str, int]] = {
        FAILED: EXIT_STAGE_FAILED,
        TIMEOUT: EXIT_TIMEOUT,
        STALLED: EXIT_STALLED,
        INTERRUPTED: EXIT_INTERRUPTED,
    }

    def __init__(self, status: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.exit_code = self._codes.get(status, EXIT_STAGE_FAILED)


class CacheCorruptError(TetherError):
    """A cached object's content no longer matches its hash; it is never used."""

    exit_code = EXIT_CACHE_CORRUPT


class RemoteError(TetherError):
    """An artifact remote is missing, unreachable, read-only or lacks an object."""

    exit_code = EXIT_REMOTE


class DivergedError(TetherError):
    """An experiment ref exists on both sides with different commits (not overwritten)."""

    exit_code = EXIT_DIVERGED


class QueueError(TetherError):
    """A queue entry is unknown or in the wrong state, or the queue backend is unusable."""

    exit_code = EXIT_QUEUE


class UnsafePathError(TetherError):
    """A path taken from data (a tree, manifest, record, ref or `-S FILE:`) would write
    outside the work tree or into `.git`; it is refused and nothing is written."""

    exit_code = EXIT_UNSAFE_PATH


class TransferRejected(TetherError):
    """A git remote refused or failed a push or fetch (hook, permissions, network);
    the message carries git's own words."""

    exit_code = EXIT_TRANSFER_REJECTED


class BusyError(TetherError):
    """Another tether process holds what this one needs (an in-place run of this work tree)."""

    exit_code = EXIT_BUSY


class LocalStateError(TetherError):
    """tether's local state cannot be used: a database or file under `.tether/` is corrupt
    or of the wrong kind, the disk is full, or a permission is missing."""

    exit_code = EXIT_LOCAL_STATE


class MissingInputError(TetherError):
    """A run needs an input that is not available where it would run (e.g. a git-ignored
    file missing from a queue snapshot); refused before anything is queued."""

    exit_code = EXIT_MISSING_INPUT


class GateRegressed(TetherError):
    """`tether gate`: a gated metric regressed (or went missing), or the run itself failed,
    compared with the last main build."""

    exit_code = EXIT_REGRESSED


class NoBaselineError(TetherError):
    """`tether gate`: no successful recorded experiment on the main branch's recent history
    to compare with (`--allow-no-baseline` passes with a warning instead)."""

    exit_code = EXIT_NO_BASELINE


class NotReproduced(TetherError):
    """`tether repro`: the reproduction ran, yet a metric (or the run's status) differs
    from the original's beyond its tolerance."""

    exit_code = EXIT_NOT_REPRODUCED


class DataSourceError(TetherError):
    """A declared data source (`data:` in the spec) cannot be used: its fetched bytes differ
    from the hash pinned in tether.lock, it is unreachable, or its `prepare` command
    failed. Nothing half-fetched is left in the cache."""

    exit_code = EXIT_DATA_SOURCE


class MissingExtraError(TetherError):
    """An optional feature needs an extra that is not installed (`pip install 'tether[X]'`)."""

    exit_code = EXIT_MISSING_EXTRA
