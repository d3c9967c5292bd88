"""The experiment index: a SQLite cache of `refs/tether/exps` at `.tether/index.db`.

The refs are the truth; the index only saves re-reading records. `refresh`
compares the refs (one `git for-each-ref`) with the rows held, reads the records
of new or moved refs (one `git cat-file --batch`), and drops rows of refs that
vanished (deleted, renamed, or never fetched). The database runs in WAL mode
with a busy timeout and short transactions, so concurrent readers and
refreshers never block each other for long; every write is idempotent, so two
processes refreshing at once both succeed. A deleted, corrupt or outdated index
file is rebuilt from the refs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether import sqlitedb
from tether.errors import LocalStateError
from tether.gitstore.experiments import exp_ref_problem, parse_exp_ref, read_record_blobs
from tether.gitstore.git import Git
from tether.layout import EXPS_REFS, STATE_DIR, exp_ref
from tether.record.metrics import flat_params, flatten
from tether.record.record import as_committed, load_record
from tether.record.stepfiles import keep_columns
from tether.record.validate import UNREADABLE, Skipped
from tether.status import NOT_RUN, SKIPPED

INDEX_FILE = "index.db"
INDEX_SCHEMA = 5  # bump when the table or what it accepts changes: older files are rebuilt
BUSY_TIMEOUT_SECONDS = 30.0
WRITE_BATCH = 500  # rows per transaction, so a writer holds the lock only briefly

# A skipped ref (invalid name or record) has status UNREADABLE; its message column says why.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
FIELDS = (  # the columns `indexed` takes, in its order
    "ref, commit_sha, baseline, name, status, created_at, duration, message, params, metrics,"
    " rules, summary, as_committed"
)
_CREATE = """
CREATE TABLE IF NOT EXISTS experiments (
    ref TEXT PRIMARY KEY, commit_sha TEXT NOT NULL, baseline TEXT NOT NULL,
    name TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    duration REAL NOT NULL, message TEXT NOT NULL, params TEXT NOT NULL,
    metrics TEXT NOT NULL, rules TEXT NOT NULL, summary TEXT NOT NULL,
    as_committed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_by_baseline ON experiments (baseline, created_at);
CREATE TABLE IF NOT EXISTS commit_params (
    commit_sha TEXT NOT NULL,
    file TEXT NOT NULL,
    params TEXT,
    PRIMARY KEY (commit_sha, file)
);
CREATE TABLE IF NOT EXISTS stage_runs (
    ref TEXT NOT NULL, commit_sha TEXT NOT NULL, stage TEXT NOT NULL,
    status TEXT NOT NULL, duration REAL
);
CREATE INDEX IF NOT EXISTS stage_runs_by_ref ON stage_runs (ref);
"""
# The stages of each experiment that ran (not skipped, not reached), for `tether metrics`.
_NOT_RAN = (SKIPPED, NOT_RUN)

Progress = Callable[[int, int], None]


class IndexedExperiment:
    """One experiment as the index holds it (params and metrics flat, dotted keys).

    Params and metrics are decoded on first use, and `json_text` is the experiment's
    JSON object as `tether show --json` prints it, so listing thousands stays cheap.
    """

    __slots__ = ("_metrics", "_metrics_text", "_params", "_params_text", "as_committed",
                 "baseline", "commit", "created_at", "duration", "json_text", "message", "name",
                 "ref", "rules", "status")

    def __init__(
        self, ref: str, commit: str, baseline: str, name: str, status: str, created_at: float,
        duration: float, message: str, params_text: str, metrics_text: str,
        rules: dict[str, Any], json_text: str, as_committed: bool = False,
    ) -> None:
        self.ref = ref
        self.commit = commit
        self.baseline = baseline
        self.name = name
        self.status = status
        self.created_at = created_at
        self.duration = duration
        self.message = message
        self.rules = rules
        self.json_text = json_text
        # Ran its baseline commit as committed: no uncommitted change, no -S override.
        self.as_committed = as_committed
        self._params_text = params_text
        self._metrics_text = metrics_text
        self._params: dict[str, Any] | None = None
        self._metrics: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = json.loads(self._params_text)
        return self._params

    @property
    def metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            self._metrics = json.loads(self._metrics_text)
        return self._metrics

    def __repr__(self) -> str:
        return f"IndexedExperiment({self.ref!r}, {self.commit[:10]!r}, {self.status!r})"


def indexed(row: tuple[Any, ...], rules_seen: dict[str, dict[str, Any]]) -> IndexedExperiment:
    """The experiment of one row of FIELDS; `rules_seen` memoizes decoded metric rules."""
    (ref, commit, base, name, status, created_at, duration, message,
     params, metrics, rules, summary, committed) = row
    parsed_rules = rules_seen.get(rules)
    if parsed_rules is None:
        parsed_rules = rules_seen[rules] = json.loads(rules)
    return IndexedExperiment(ref, commit, base, name, status, created_at, duration, message,
                             params, metrics, parsed_rules, summary, bool(committed))


def index_path(root: Path) -> Path:
    return root / STATE_DIR / INDEX_FILE


def _row(
    ref: str, commit: str, blob: bytes | None, rules_text: dict[str, str], root: Path
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The table row of one experiment and its stage_runs rows; `rules_text` memoizes
    encoded metric rules. Long step series are kept for `tether view` on the way, while
    the record is decoded (`record/stepfiles.py`; the run that recorded it kept them).

    A ref with an invalid name or record gets an UNREADABLE row saying what is wrong,
    so it is reported (not read again) until the ref moves.
    """
    parsed = parse_exp_ref(ref, commit)
    record, problem = load_record(blob) if parsed else (None, exp_ref_problem(ref))
    if parsed:
        baseline, name = parsed.baseline, parsed.name
    else:  # listed under its baseline when that part is valid, under none otherwise
        baseline, _, name = ref.removeprefix(EXPS_REFS).partition("/")
        if exp_ref_problem(exp_ref(baseline, "x")) is not None:
            baseline = ""
    if parsed is None or record is None:
        return (ref, commit, baseline, name, UNREADABLE, 0.0, 0.0, str(problem), "{}", "{}",
                "{}", "{}", 0), []
    keep_columns(root, commit, record.steps)
    rules = record.spec.get("metrics")
    created_at = record.created_at
    committed = as_committed(record)
    summary = {
        "name": name, "ref": ref, "commit": commit,
        "baseline": baseline, "status": record.status,
        "created": datetime.fromtimestamp(created_at, UTC).isoformat(timespec="seconds"),
        "created_at": created_at, "duration": record.duration,
        "message": record.message, "as_committed": committed,
    }
    params_text = json.dumps(flat_params(record.params))
    metrics_text = json.dumps(flatten(record.metrics))
    # The JSON object `show --json` prints, assembled without encoding params twice.
    summary_text = (f'{json.dumps(summary)[:-1]}, "params": {params_text}, '
                    f'"metrics": {metrics_text}}}')
    stages = [(ref, commit, stage.name, stage.status, stage.duration)
              for stage in record.stages if stage.status not in _NOT_RAN]
    return (
        ref, commit, baseline, summary["name"], summary["status"], created_at,
        summary["duration"], summary["message"], params_text, metrics_text,
        _rules_text(rules if isinstance(rules, dict) else {}, rules_text), summary_text,
        int(committed),
    ), stages


def _rules_text(rules: dict[str, Any], memo: dict[str, str]) -> str:
    # Records of one project share their rules: encode them once, not once per record.
    key = repr(rules)
    text = memo.get(key)
    if text is None:
        text = memo[key] = json.dumps(rules, sort_keys=True)
    return text


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _remove_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    if not (path.parent / ".gitignore").exists():
        from tether.project import ensure_state_dir

        ensure_state_dir(path.parent.parent)
    connection = sqlitedb.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version != INDEX_SCHEMA:
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute("PRAGMA user_version").fetchone()[0] != INDEX_SCHEMA:
                connection.execute("DROP TABLE IF EXISTS experiments")
                connection.execute("DROP TABLE IF EXISTS stage_runs")
                for statement in _CREATE.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version={INDEX_SCHEMA}")
            connection.execute("COMMIT")
    except BaseException:
        connection.close()
        raise
    return connection


def _chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


class Index:
    """An up-to-date view of the experiments, as of the refs read by `refresh`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, refs: dict[str, str]) -> None:
        self.path = path
        self.refs = refs
        self.notes: list[str] = []  # what refresh repaired, for the CLI to tell
        self._connection = connection

    def close(self) -> None:
        self._connection.close()

    def experiments(self, baseline: str | None = None) -> list[IndexedExperiment]:
        """Recorded experiments (of one baseline when given), oldest first."""
        query = f"SELECT {FIELDS} FROM experiments"
        args: tuple[str, ...] = ()
        if baseline is not None:
            query += " WHERE baseline = ?"
            args = (baseline,)
        rules_seen: dict[str, dict[str, Any]] = {}
        refs = self.refs
        # A concurrent refresh may hold a newer or older view: the refs we read win.
        return [indexed(row, rules_seen) for row in self._connection.execute(
                    query + " ORDER BY created_at, rowid", args)
                if refs.get(row[0]) == row[1] and row[4] != UNREADABLE]

    def run_counts(self) -> dict[str, int]:
        """How many readable experiments the refs hold, by run status."""
        return dict(self._connection.execute(
            "SELECT status, COUNT(*) FROM experiments WHERE status != ? GROUP BY status",
            (UNREADABLE,)).fetchall())

    def stage_figures(self, bounds: Sequence[float]) -> list[tuple[Any, ...]]:
        """Per stage name and status of the stages that ran: (stage, status, count, sum of
        durations, how many took at most each of `bounds`), in one grouped query."""
        below = "".join(f", SUM(duration <= {float(bound)!r})" for bound in bounds)
        return self._connection.execute(
            f"SELECT stage, status, COUNT(*), TOTAL(duration){below} FROM stage_runs "
            "WHERE duration IS NOT NULL GROUP BY stage, status").fetchall()

    def skipped(self, baseline: str | None = None) -> list[Skipped]:
        """Refs left out because their name or record is invalid (of one baseline when given).

        Refs with an invalid baseline belong to no baseline: they are listed only without one.
        """
        query = "SELECT ref, commit_sha, message FROM experiments WHERE status = ?"
        args: tuple[str, ...] = (UNREADABLE,)
        if baseline is not None:
            query += " AND baseline = ?"
            args = (UNREADABLE, baseline)
        return [Skipped(ref, problem) for ref, commit, problem
                in self._connection.execute(query + " ORDER BY ref", args)
                if self.refs.get(ref) == commit]


def refresh(git: Git, *, progress: Progress | None = None) -> Index:
    """Bring the index in line with the refs and return it; rebuilds a corrupt file."""
    path = index_path(git.root)
    refs = {}
    for line in git.for_each_ref(EXPS_REFS):
        ref, _, commit = line.partition(" ")
        refs[ref] = commit
    moved = _move_aside_if_not_a_file(path)
    try:
        try:
            index = _refresh(git, path, refs, progress)
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            _remove_files(path)
            index = _refresh(git, path, refs, progress)
    except sqlite3.OperationalError as exc:
        raise _unusable(path, exc) from exc
    if moved is not None:
        index.notes.append(
            f"{path} was not a file; moved it aside to {moved.name} and rebuilt the index "
            "from the refs (nothing is lost: the index is only a cache)")
    return index


def open_database(root: Path) -> sqlite3.Connection:
    """A connection to the index file of `root` (created or rebuilt when outdated), for
    the other tables it keeps (`reference.commit_params`)."""
    return _connect(index_path(root))


def _unusable(path: Path, exc: sqlite3.OperationalError) -> Exception:
    """The error for an index that cannot be opened or written (others are re-raised)."""
    text = str(exc)
    if "full" in text:
        return LocalStateError(
            f"cannot write the experiment index {path}: {text}",
            hint="free some space and run the command again; nothing is lost (the index is "
            "only a cache of the refs)")
    if "unable to open" in text or "readonly" in text:
        return LocalStateError(
            f"cannot open the experiment index {path}: {text}",
            hint="give your user read and write access to it and to its folder, or delete "
            "it: it is only a cache, rebuilt from the refs")
    return exc


def _move_aside_if_not_a_file(path: Path) -> Path | None:
    """Move whatever stands at the index's path aside when it is no regular file."""
    if not (path.exists() or path.is_symlink()) or (path.is_file() and not path.is_symlink()):
        return None
    aside = path.with_name(f"{path.name}.not-an-index-{os.urandom(3).hex()}")
    os.replace(path, aside)
    return aside


def _refresh(
    git: Git, path: Path, refs: dict[str, str], progress: Progress | None
) -> Index:
    connection = _connect(path)
    try:
        held = dict(connection.execute("SELECT ref, commit_sha FROM experiments").fetchall())
        vanished = [ref for ref in held if ref not in refs]
        changed = [ref for ref, commit in refs.items() if held.get(ref) != commit]
        if vanished:
            connection.execute("BEGIN IMMEDIATE")
            for table in ("experiments", "stage_runs"):
                connection.executemany(f"DELETE FROM {table} WHERE ref = ? AND commit_sha = ?",
                                       [(ref, held[ref]) for ref in vanished])
            connection.execute("COMMIT")
        if changed:
            _add(git, connection, refs, changed, progress)
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()
        raise
    return Index(path, connection, refs)


def _add(
    git: Git, connection: sqlite3.Connection, refs: dict[str, str], changed: list[str],
    progress: Progress | None,
) -> None:
    blobs = read_record_blobs(git, [refs[ref] for ref in changed])
    total = len(changed)
    done = 0
    if progress:
        progress(0, total)
    rules_text: dict[str, str] = {}
    insert = f"INSERT OR REPLACE INTO experiments ({FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    for chunk in _chunks(total, WRITE_BATCH):
        rows, stage_rows = [], []
        for position in chunk:
            ref = changed[position]
            row, stages = _row(ref, refs[ref], blobs[position], rules_text, git.root)
            rows.append(row)
            stage_rows += stages
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(insert, rows)
        connection.executemany("DELETE FROM stage_runs WHERE ref = ?", [(r[0],) for r in rows])
        connection.executemany("INSERT INTO stage_runs VALUES (?,?,?,?,?)", stage_rows)
        connection.execute("COMMIT")
        done += len(chunk)
        if progress:
            progress(done, total)
