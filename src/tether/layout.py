"""Where tether keeps things: ref namespaces, file names and paths, in one place."""

from __future__ import annotations

from pathlib import Path

# Git ref namespaces (never under refs/heads or refs/tags).
REFS_ROOT = "refs/tether/"
EXPS_REFS = "refs/tether/exps/"
QUEUE_REFS = "refs/tether/queue/"

# Files at the project root.
SPEC_YAML = "tether.yaml"
SPEC_PY = "tether.py"
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


def runs_dir(root: Path) -> Path:
    """Per-run scratch: logs, step files, effective params, while and after a run."""
    return root / STATE_DIR / "runs"


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
    """The local object store: `objects/<b3|b3d>/<2 hex>/<rest of hex>`."""
    return root / CACHE_DIR / "objects"


def run_cache_dir(root: Path) -> Path:
    """Run-cache entries: `runs/<fingerprint>.json`."""
    return root / CACHE_DIR / "runs"
