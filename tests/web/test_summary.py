"""The unfiltered table's summary, folded experiment by experiment and saved, equals the
one SQLite aggregates, after additions, removals and restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tether.experiments.index import index_path, refresh
from tether.gitstore.git import Git
from tether.web import sqlpage
from tether.web.summary import Summaries, render, summary_path


def _refs(root: Path) -> dict[str, str]:
    index = refresh(Git(root))
    try:
        return dict(index.refs)
    finally:
        index.close()


def _sql(connection: sqlite3.Connection) -> dict[str, object]:
    total = connection.execute(
        "SELECT COUNT(*) FROM experiments WHERE status != 'unreadable'").fetchone()[0]
    return sqlpage.summary(connection, total, {}, {})


def test_folded_summary_equals_sql_and_is_reused_after_a_restart(project: Path) -> None:
    summary_path(project).unlink(missing_ok=True)
    refs = _refs(project)
    connection = sqlpage.connect(index_path(project))
    try:
        folded = render(Summaries(project).state_for(refs, connection), {}, {})
        expected = _sql(connection)
    finally:
        connection.close()
    assert folded == expected
    assert folded["best"]["acc"]["names"] and folded["columns"]["params"]
    saved = json.loads(summary_path(project).read_text())
    assert saved["state"]["total"] == len(refs)
    closed = sqlpage.connect(index_path(project))
    closed.close()  # a restart on unchanged refs reads no row: the saved state answers
    assert render(Summaries(project).state_for(refs, closed), {}, {}) == expected


def test_additions_fold_in_and_a_removal_folds_everything_again(project: Path,
                                                                tmp_path: Path) -> None:
    refs = _refs(project)
    newest = max(refs)  # any one experiment
    fewer = {ref: commit for ref, commit in refs.items() if ref != newest}
    connection = sqlpage.connect(index_path(project))
    try:
        kept = Summaries(project)
        kept.path = tmp_path / "kept.json"
        grown = render(kept.state_for(fewer, connection), {}, {})
        assert render(kept.state_for(refs, connection), {}, {}) == _sql(connection)
        shrunk = render(kept.state_for(fewer, connection), {}, {})  # a ref deleted
        assert shrunk == grown
        assert sum(b["count"] for b in shrunk["baselines"]) == len(fewer)
        moved = dict(refs, **{newest: fewer[next(iter(fewer))]})  # a ref moved
        fresh = Summaries(project)
        fresh.path = tmp_path / "fresh.json"
        assert render(kept.state_for(moved, connection), {}, {}) == render(
            fresh.state_for(moved, connection), {}, {})
    finally:
        connection.close()
