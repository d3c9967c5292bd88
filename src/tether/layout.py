"""Where tether keeps things: ref namespaces, file names and paths, in one place."""

from __future__ import annotations

from pathlib import Path

# Git ref namespaces (never under refs/heads or refs/tags).
REFS_ROOT = "refs/tether/"
EXPS_REFS = "refs/tether/exps/"
QUEUE_REFS = "refs/tether/queue/"
# A `--temp` run's workspace snapshot, for the moment its worktree is checked out.
SNAPSHOT_REFS = "refs/tether/snapshots/"
# On a followed git remote: who runs a pushed commit (`tether worker --follow`), one
# create-only ref per commit.
CLAIMS_REFS = "refs/tether/claims/"
# Here: the branch tips a follower has already considered, per remote.
FOLLOW_REFS = "refs/tether/follow/"

# Files at the project root.
SPEC_YAML = "tether.yaml"
SPEC_PY = "tetherfile.py"
SPEC_PY_SHADOWING = "tether.py"  # still read; warns (it hides the package)
LOCK_FILE = "tether.lock"
DEFAULT_PARAMS = "params.yaml"

# Inside an experiment commit's tree.
RECORD_PATH = ".tether/record.json"
RECORD_LOGS_DIR = ".tether/logs"
RECORD_SCHEMA = 1

# Local state folder (ignored by git except the committed config).
STATE_DIR = ".tether"
PROJECT_CONFIG = "config.yaml"
LOCAL_CONFIG = "config.local.yaml"

# A stage's log is recorded whole below this size, else as head and tail.
LOG_INLINE_CAP = 256 * 1024
LOG_HEAD_TAIL = 32 * 1024


def exp_ref(baseline: str, name: str) -> str:
    """The ref of experiment `name` recorded against commit `baseline`."""
    return f"{EXPS_REFS}{baseline}/{name}"


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


RUN_INFO = "run.json"  # in a run's folder while it runs: name, run id, pid, start


def runs_dir(root: Path) -> Path:
    """Per-run scratch: logs, step files, effective params, while and after a run."""
    return root / STATE_DIR / "runs"


# Step series of at least this many points have their columns kept in view_steps_dir.
LONG_STEP_SERIES = 10_000


def view_steps_dir(root: Path) -> Path:
    """Step metric columns of recorded experiments for `tether view` (a cache), shared
    by the work trees of the repository like the refs (see `cache_root`)."""
    return cache_root(root) / STATE_DIR / "view" / "steps"


def tmp_dir(root: Path) -> Path:
    return root / STATE_DIR / "tmp"


def queue_db(root: Path) -> Path:
    """The embedded queue's SQLite database."""
    return root / STATE_DIR / "queue.db"


def queue_dir(root: Path) -> Path:
    """Queue state besides the database: per-attempt logs, locks, worktrees."""
    return root / STATE_DIR / "queue"


def worktrees_dir(root: Path) -> Path:
    return root / STATE_DIR / "worktrees"


def error_log(root: Path) -> Path:
    """Where tracebacks go (the terminal only sees them with --verbose)."""
    return root / STATE_DIR / "logs" / "tether.log"


STATE_GITIGNORE = """\
# tether's local state stays on this machine (this file ignores itself too);
# only the project config is meant to be committed.
*
!config.yaml
"""


# Content-addressed cache of outputs, and the run-cache, under the state folder.
CACHE_DIR = ".tether/cache"
STATCACHE_DB = "statcache.db"


def objects_dir(root: Path) -> Path:
    """The repository's object store: `objects/<b3|b3d>/<2 hex>/<rest of hex>`."""
    return cache_root(root) / CACHE_DIR / "objects"


def run_cache_dir(root: Path) -> Path:
    """The repository's run-cache entries: `runs/<fingerprint>.json`."""
    return cache_root(root) / CACHE_DIR / "runs"


_CACHE_ROOTS: dict[str, Path] = {}


def cache_root(root: Path) -> Path:
    """The work tree whose `.tether/cache` every work tree of `root`'s repository shares.

    The common git dir decides, as `git worktree list` names the main work tree:
    the common dir without its `/.git`. A linked worktree (`--temp`, a queue
    worker's) therefore shares the main work tree's cache and run-cache. Where
    the common dir is not called `.git` (a bare repository with worktrees, a
    `--separate-git-dir` or a submodule), it is the work tree in its
    `core.worktree` if set, else the common git dir itself.
    """
    key = str(root)
    found = _CACHE_ROOTS.get(key)
    if found is None:
        found = _CACHE_ROOTS[key] = _find_cache_root(Path(root))
    return found


def _find_cache_root(root: Path) -> Path:
    dotgit = root / ".git"
    if dotgit.is_dir() or not dotgit.exists():
        return root  # the main work tree (or not a repository: nothing to share)
    try:
        text = dotgit.read_text().strip()
    except OSError:
        return root
    if not text.startswith("gitdir:"):
        return root
    gitdir = Path(text.removeprefix("gitdir:").strip())
    gitdir = gitdir if gitdir.is_absolute() else (root / gitdir)
    try:
        common_text = (gitdir / "commondir").read_text().strip()
    except OSError:
        common = gitdir  # no linked worktree: a separate git dir or a submodule
    else:
        common = Path(common_text) if Path(common_text).is_absolute() else gitdir / common_text
    common = common.resolve()
    if common.name == ".git":
        return common.parent
    import subprocess  # only for the unusual layouts; a config file, so no repository needed

    proc = subprocess.run(["git", "config", "--file", str(common / "config"), "core.worktree"],
                          cwd=root, capture_output=True, check=False)
    worktree = proc.stdout.decode(errors="replace").strip()
    if proc.returncode == 0 and worktree:
        path = Path(worktree)
        return (path if path.is_absolute() else common / path).resolve()
    return common  # the same answer from every work tree of the repository
