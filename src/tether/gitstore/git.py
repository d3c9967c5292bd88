"""The one wrapper for every git call tether makes.

It strips `GIT_*` variables leaked from a calling git (hooks, worktrees), so
tether always talks to the repository it was pointed at, captures output, and
turns failures into a `GitError` that names the command. tether's own git calls
never run the user's hooks (`git_env`); the commands a user's stages run get the
user's git unchanged.
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


# tether's git calls run no hook: a failing post-checkout or reference-transaction
# hook must not break a temporary worktree or a record, nor a pre-commit one run at
# all (git reads these variables like `-c core.hooksPath=/dev/null`).
_NO_HOOKS = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "core.hooksPath",
    "GIT_CONFIG_VALUE_0": os.devnull,
}


# The exception: a push the user asked for runs their pre-push hook, as `git push` does
# (git-lfs uploads there the LFS objects the pushed records point at). Pass as `env`.
WITH_HOOKS = {"GIT_CONFIG_COUNT": "0"}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without leaked `GIT_*` variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIX) or k in _KEEP}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    if extra:
        env.update(extra)
    return env


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`clean_env` for tether's own git processes: no user hook runs in them."""
    env = clean_env(_NO_HOOKS)
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
            env=git_env(env),
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
            symbolic = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
            branch = symbolic.stdout.decode().strip()
            if branch and self.out("for-each-ref", "--count=1", "--format=%(refname)"):
                # An orphan branch (`git checkout --orphan`) in a repository with commits.
                raise GitStateError(
                    f"branch {branch!r} of the git repository at {self.root} has no commit "
                    "yet (an orphan branch)",
                    hint=f"commit on {branch!r} first (git commit -m 'start'), or switch to a "
                    "branch with commits; every experiment is recorded against a commit",
                )
            raise GitStateError(
                f"the git repository at {self.root} has no commit yet",
                hint="commit your code first (git add -A && git commit -m 'start'); "
                "every experiment is recorded against a commit",
            )
        return proc.stdout.decode().strip()

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
            ["git", *argv], cwd=cwd, env=git_env(), stdin=subprocess.DEVNULL,
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
    check_git_dir_env(start, Path(lines[0]))
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
        check_git_dir_env(start, None)
        raise GitStateError(
            f"{start} is not inside a git repository",
            hint="tether records every run as a git commit: run `git init` "
            "(and commit your code) first",
        )
    root = Path(proc.stdout.decode().strip())
    check_git_dir_env(start, root)
    return root


_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")


def check_git_dir_env(start: Path, found: Path | None) -> None:
    """Refuse when `GIT_DIR`/`GIT_WORK_TREE` name another repository than `start` is in.

    tether finds the repository from the directory it runs in and strips these
    variables from every git call, so that a hook's own `GIT_DIR` (the same
    repository) does no harm. When they point elsewhere, git would work on that
    other repository: rather than silently record in the enclosing one, refuse.
    `found` is the work tree's top level found without them (None: none).
    """
    given = {name: os.environ[name] for name in _REDIRECTS if os.environ.get(name)}
    if not given:
        return
    with_env = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"],
        cwd=start, capture_output=True, env={**os.environ, **_NO_HOOKS},
    )
    without = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=start, capture_output=True, env=clean_env(),
    ) if found is not None else None
    theirs = with_env.stdout.decode(errors="replace").splitlines()
    ours = without.stdout.decode(errors="replace").splitlines() if without else []
    same_repo = (
        with_env.returncode == 0 and bool(ours) and bool(theirs)
        and os.path.realpath(theirs[0]) == os.path.realpath(ours[0])
    )
    # GIT_DIR alone makes git take the current directory as the top of the work tree;
    # only an explicit GIT_WORK_TREE that differs moves the work tree elsewhere.
    same_tree = "GIT_WORK_TREE" not in given or (
        found is not None and len(theirs) > 1
        and os.path.realpath(theirs[1]) == os.path.realpath(found)
    )
    if same_repo and same_tree:
        return
    named = " and ".join(f"{name}={value}" for name, value in given.items())
    where = f"the repository at {found}" if found is not None else "no repository"
    raise GitStateError(
        f"{named} is set, but {start} is in {where}: tether finds the repository from "
        "the directory it runs in and does not follow these variables",
        hint=f"unset {' and '.join(given)} and run tether from inside the work tree "
        "you mean (`cd DIR && tether ...`)",
    )
