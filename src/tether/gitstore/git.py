"""The one wrapper for every git call tether makes.

It strips `GIT_*` variables leaked from a calling git (hooks, worktrees), so
tether always talks to the repository it was pointed at, captures output, and
turns failures into a `GitError` that names the command.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tether.errors import GitError, GitStateError

# Variables that would redirect git to another repository, index or config.
_LEAKY_PREFIX = "GIT_"
_KEEP = frozenset(
    {
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "GIT_TERMINAL_PROMPT",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
    }
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without leaked `GIT_*` variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIX) or k in _KEEP}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    if extra:
        env.update(extra)
    return env


class Git:
    """A git repository at `root` (the work tree's top level)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run(
        self,
        *argv: str,
        input: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `git argv...`, returning the completed process (bytes out/err)."""
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            ["git", *argv],
            cwd=cwd or self.root,
            input=data,
            capture_output=True,
            env=clean_env(env),
        )
        if check and proc.returncode != 0:
            raise GitError(list(argv), proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    def start(self, *argv: str, cwd: Path | None = None) -> GitJob:
        """Start `git argv...` now and read its result later (see GitJob)."""
        return GitJob(list(argv), cwd or self.root)

    def out(self, *argv: str, **kwargs: object) -> str:
        """Run git and return its stdout as text without the trailing newline."""
        proc = self.run(*argv, **kwargs)  # type: ignore[arg-type]
        return proc.stdout.decode(errors="replace").rstrip("\n")

    def ok(self, *argv: str, env: Mapping[str, str] | None = None) -> bool:
        """Whether `git argv...` exits 0."""
        return self.run(*argv, check=False, env=env).returncode == 0

    # -- common questions -------------------------------------------------

    def head_commit(self) -> str:
        """The commit HEAD points at; a clear error in a repository with no commit."""
        proc = self.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        if proc.returncode != 0:
            raise GitStateError(
                f"the git repository at {self.root} has no commit yet",
                hint="commit your code first (git add -A && git commit -m 'start'); "
                "every experiment is recorded against a commit",
            )
        return proc.stdout.decode().strip()

    def head_branch(self) -> str | None:
        """The branch HEAD is on, or None when detached."""
        proc = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        return proc.stdout.decode().strip() or None

    def resolve(self, rev: str) -> str | None:
        """The full sha of `rev` (a commit), or None if it names nothing."""
        proc = self.run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None

    def ref_value(self, ref: str) -> str | None:
        """The object a full ref points at, or None if it does not exist."""
        proc = self.run("rev-parse", "--verify", "-q", ref, check=False)
        return proc.stdout.decode().strip() or None

    def update_ref(self, ref: str, new: str, *, old: str | None = None, message: str = "") -> None:
        """Point `ref` at `new`; with `old` ("" for must-not-exist) only if unchanged."""
        argv = ["update-ref"]
        if message:
            argv += ["-m", message]
        argv += [ref, new]
        if old is not None:
            argv.append(old or "0" * 40)
        self.run(*argv)

    def for_each_ref(self, pattern: str, fmt: str = "%(refname) %(objectname)") -> list[str]:
        """Lines of `git for-each-ref --format=fmt pattern`."""
        text = self.out("for-each-ref", f"--format={fmt}", pattern)
        return [line for line in text.splitlines() if line]


def ident_of(proc: subprocess.CompletedProcess[bytes]) -> str:
    """`Name <email>` from `git var GIT_COMMITTER_IDENT`, or tether's own when unset."""
    text = proc.stdout.decode(errors="replace").strip()
    if proc.returncode == 0 and ">" in text:
        return text[: text.rindex(">") + 1]
    return "tether <tether@localhost>"


class GitJob:
    """A git command started now and read later, so that several run at once.

    Its output is read only by `result()`: a command with more to say than a pipe
    holds waits until then, which is harmless.
    """

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.argv = argv
        self._proc = subprocess.Popen(
            ["git", *argv], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._done: subprocess.CompletedProcess[bytes] | None = None

    def result(self, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """The finished command (bytes out/err); a GitError if it failed and `check`."""
        if self._done is None:
            out, err = self._proc.communicate()
            self._done = subprocess.CompletedProcess(
                ["git", *self.argv], self._proc.returncode, out, err
            )
        if check and self._done.returncode != 0:
            raise GitError(self.argv, self._done.returncode,
                           self._done.stderr.decode(errors="replace"))
        return self._done

    def cancel(self) -> None:
        """Stop the command if it is still running and reap it."""
        if self._done is None:
            if self._proc.poll() is None:
                self._proc.kill()
            self.result(check=False)


class RepoState:
    """What a run needs to know about the repository, from one git call.

    A plain class: this module is on every command's path, and importing
    dataclasses (with inspect) costs more than the rest of it.
    """

    __slots__ = ("branch", "head", "index", "root")

    def __init__(self, *, root: Path, index: Path, head: str, branch: str | None) -> None:
        self.root = root
        self.index = index
        self.head = head
        self.branch = branch


REPO_STATE_ARGV = (
    "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-path", "index",
    "HEAD^{commit}", "--symbolic-full-name", "HEAD",
)


def repo_state(start: Path, job: GitJob | None = None) -> RepoState:
    """Top level, index path, HEAD commit and branch; clear errors when missing.

    `job`, if given, is `REPO_STATE_ARGV` already started in `start`.
    """
    proc = (job or GitJob(list(REPO_STATE_ARGV), start)).result(check=False)
    lines = proc.stdout.decode().splitlines()
    if proc.returncode != 0 or len(lines) != 4:
        Git(find_root(start)).head_commit()  # raises the precise error
        raise GitStateError(f"cannot read the git repository at {start}")
    branch = lines[3].removeprefix("refs/heads/") if lines[3].startswith("refs/heads/") else None
    return RepoState(root=Path(lines[0]), index=Path(lines[1]), head=lines[2], branch=branch)


def find_root(start: Path) -> Path:
    """The top level of the git work tree containing `start`, or a GitStateError."""
    proc = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=start,
        capture_output=True,
        env=clean_env(),
    )
    if proc.returncode != 0:
        raise GitStateError(
            f"{start} is not inside a git repository",
            hint="tether records every run as a git commit: run `git init` "
            "(and commit your code) first",
        )
    return Path(proc.stdout.decode().strip())
