"""The last main build: the newest successful experiment on the main branch's history
that is no reproduction.

`find_main_build` walks the first-parent history of a revision (newest first, at most
`depth` commits) to the first commit with a successful recorded experiment. Refs that
only the git remote has are fetched on demand, only `refs/tether/exps/<sha>/*` of the
commits the walk reaches; a shallow clone is deepened when the walk hits its boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tether.config import load_config
from tether.errors import GitError, GitStateError, TransferRejected, UsageError
from tether.experiments.index import Index, IndexedExperiment, refresh
from tether.gitstore.git import Git
from tether.layout import EXPS_REFS
from tether.structs import field, struct

DEFAULT_DEPTH = 200
DEFAULT_MAIN = "main"


@struct
class Settings:
    """The `feedback:` section of `.tether/config.yaml`."""

    main: str | None = None  # the main branch; else the remote's default branch, else main
    remote: str | None = None  # the git remote to fetch from; else origin, else the only one
    depth: int = DEFAULT_DEPTH  # first-parent commits walked looking for the main build


@struct
class MainCommit:
    """The newest commit of the main branch's history with a successful experiment."""

    rev: str  # the revision walked, as given (e.g. main, origin/main)
    tip: str  # the commit it named
    commit: str  # the commit found
    distance: int  # first-parent steps from tip to commit
    experiments: list[IndexedExperiment]  # its successful experiments, oldest first
    fetched: int = 0  # baselines whose refs were fetched from the remote on the way

    def originals(self, git: Git) -> MainCommit:
        """This commit with its reproductions (`tether repro` runs) left out, unless it has
        nothing else: a nightly reproduction, which may have drifted, is no main build."""
        import json

        from tether.gitstore.experiments import read_record_blobs

        kept = []
        for exp, blob in zip(self.experiments,
                             read_record_blobs(git, [e.commit for e in self.experiments]),
                             strict=True):
            try:
                reproduction = blob is not None and bool(json.loads(blob).get("reproduces"))
            except (ValueError, RecursionError, AttributeError):
                reproduction = False
            if not reproduction:
                kept.append(exp)
        return MainCommit(self.rev, self.tip, self.commit, self.distance,
                          kept or self.experiments, self.fetched)

    def build_for(self, name: str) -> MainBuild:
        """The main build for an experiment named `name`: the one of that name if there
        is one, else the newest."""
        named = [e for e in self.experiments if e.name == name]
        return MainBuild(self, (named or self.experiments)[-1])


@struct(frozen=True)
class MainBuild:
    """The experiment a change is gated against, and where it was found."""

    found: MainCommit
    experiment: IndexedExperiment


@struct
class Search:
    """What the walk looked at, for a result or a "no main build" message."""

    rev: str
    tip: str | None = None
    walked: int = 0
    depth: int = DEFAULT_DEPTH
    remote: str | None = None
    notes: list[str] = field(default_factory=list)


def load_settings(root: Path) -> Settings:
    """`feedback:` of the project config; a wrong type is a usage error naming the key."""
    section = load_config(root).get("feedback") or {}
    if not isinstance(section, dict):
        raise UsageError("feedback: in .tether/config.yaml must be a mapping",
                         hint="e.g. feedback: {main: main, depth: 200}")
    depth = section.get("depth", DEFAULT_DEPTH)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(f"feedback.depth in .tether/config.yaml must be a positive integer, "
                         f"found {depth!r}")
    for key in ("main", "remote"):
        if section.get(key) is not None and not isinstance(section[key], str):
            raise UsageError(f"feedback.{key} in .tether/config.yaml must be a string")
    return Settings(main=section.get("main"), remote=section.get("remote"), depth=depth)


def default_remote(git: Git, settings: Settings) -> str | None:
    """The git remote to fetch from: the configured one, origin, or the only one."""
    remotes = git.out("remote").split()
    if settings.remote:
        if settings.remote not in remotes:
            raise UsageError(f"feedback.remote {settings.remote!r} is not a git remote "
                             f"(remotes: {', '.join(remotes) or 'none'})")
        return settings.remote
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def main_branch(git: Git, settings: Settings, remote: str | None) -> str:
    """`feedback.main`, else the remote's default branch, else `main`."""
    if settings.main:
        return settings.main
    if remote:
        head = git.run("symbolic-ref", "-q", "--short", f"refs/remotes/{remote}/HEAD",
                       check=False).stdout.decode().strip()
        if head:
            return head.removeprefix(f"{remote}/")
    return DEFAULT_MAIN


def _resolve_rev(git: Git, rev: str, remote: str | None, fetch: bool, search: Search) -> str:
    """The commit `rev` names: as given, as `<remote>/<rev>`, or fetched from the remote."""
    found = git.resolve(rev) or (git.resolve(f"refs/remotes/{remote}/{rev}") if remote else None)
    if found:
        return found
    if remote and fetch:
        argv = ["fetch", "--no-tags", "--no-write-fetch-head"]
        if _is_shallow(git):
            argv.append(f"--depth={search.depth}")
        _fetch(git, *argv, remote, f"+refs/heads/{rev}:refs/remotes/{remote}/{rev}")
        search.notes.append(f"fetched {rev} from {remote}")
        found = git.resolve(f"refs/remotes/{remote}/{rev}")
        if found:
            return found
    where = f" (nor {remote}/{rev})" if remote else ""
    raise GitStateError(
        f"{rev!r} names no commit here{where}: cannot find the main branch to gate against",
        hint=f"fetch it (git fetch {remote or 'origin'} {rev}), pass --against REV, or set "
        "feedback.main in .tether/config.yaml",
    )


def _is_shallow(git: Git) -> bool:
    return git.out("rev-parse", "--is-shallow-repository") == "true"


def _shallow_roots(git: Git) -> set[str]:
    path = Path(git.out("rev-parse", "--path-format=absolute", "--git-path", "shallow"))
    return set(path.read_text().split()) if path.exists() else set()


def _fetch(git: Git, *argv: str) -> None:
    try:
        git.run(*argv)
    except GitError as exc:
        raise TransferRejected(
            f"fetching from the git remote failed: {exc.stderr.strip() or exc.returncode}",
            hint="check the remote's URL and your access (git fetch works by hand?), or "
            "pass --no-fetch to use only what is here") from None


def first_parents(git: Git, tip: str, depth: int) -> list[str]:
    """`tip` and its first-parent ancestors, newest first, at most `depth`."""
    return git.out("rev-list", "--first-parent", f"--max-count={depth}", tip).split()


def _remote_baselines(git: Git, remote: str, notes: list[str]) -> set[str]:
    """Baselines that have experiment refs on the git remote (one `git ls-remote`)."""
    proc = git.run("ls-remote", "--refs", remote, f"{EXPS_REFS}*", check=False)
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        notes.append(f"warning: could not list experiments on {remote} "
                     f"({said[-1] if said else proc.returncode}); using only those here")
        return set()
    baselines = set()
    for line in proc.stdout.decode(errors="replace").splitlines():
        _, _, ref = line.partition("\t")
        baselines.add(ref.removeprefix(EXPS_REFS).partition("/")[0])
    return baselines


def _local_baselines(index: Index) -> set[str]:
    return {ref.removeprefix(EXPS_REFS).partition("/")[0] for ref in index.refs}


def find_main_commit(
    git: Git, index: Index, rev: str, *, skip: frozenset[str] = frozenset(),
    depth: int = DEFAULT_DEPTH, remote: str | None = None, fetch: bool = True,
    reopen: Callable[[], Index] | None = None,
) -> tuple[MainCommit | None, Search, Index]:
    """The newest commit on `rev`'s first-parent history with a successful experiment,
    the search, and the index (refreshed when refs were fetched). Commits in `skip` (those
    the gated experiments were recorded against) are passed over: a run is never gated
    against its siblings."""
    search = Search(rev=rev, depth=depth, remote=remote)
    tip = _resolve_rev(git, rev, remote, fetch, search)
    search.tip = tip
    local = _local_baselines(index)
    remote_only: set[str] | None = None
    fetched = 0
    seen = 0
    while True:
        commits = first_parents(git, tip, depth)
        for distance in range(seen, len(commits)):
            commit = commits[distance]
            if commit not in local and remote and fetch:
                if remote_only is None:
                    remote_only = _remote_baselines(git, remote, search.notes) - local
                if commit in remote_only:
                    pattern = f"{EXPS_REFS}{commit}/*"
                    _fetch(git, "fetch", "--no-tags", "--no-write-fetch-head", remote,
                           f"{pattern}:{pattern}")
                    fetched += 1
                    index.close()
                    index = reopen() if reopen else refresh(git)
                    local = _local_baselines(index)
            if commit not in local or commit in skip:
                continue
            good = [e for e in index.experiments(commit) if e.status == "success"]
            if good:
                search.walked = distance + 1
                return (MainCommit(rev, tip, commit, distance, good, fetched), search, index)
        seen = len(commits)
        search.walked = seen
        if seen >= depth or not commits or commits[-1] not in _shallow_roots(git):
            return None, search, index
        more = depth - seen
        if not (remote and fetch):
            raise GitStateError(
                f"this shallow clone ends {seen} commits down {rev}'s history, before any "
                "main build was found",
                hint=f"deepen it: git fetch --deepen={more} {remote or 'origin'} (or git fetch "
                "--unshallow); in CI check out with fetch-depth: 0 / GIT_DEPTH: 0")
        _fetch(git, "fetch", "--no-tags", "--no-write-fetch-head", f"--deepen={more}", remote)
        search.notes.append(f"deepened the shallow clone by {more} commits from {remote}")
        if len(first_parents(git, tip, depth)) <= seen:
            return None, search, index
