"""The viewer's catalog sees new experiments without re-reading refs that did not change."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import git, run_tether, write
from tether.web.catalog import Catalog, refs_fingerprint


def wait_for_generation(catalog: Catalog, above: int) -> int:
    deadline = time.monotonic() + 60
    while catalog.current() <= above:
        assert time.monotonic() < deadline, "the catalog never saw the new experiment"
        time.sleep(0.05)
    return catalog.generation


def test_a_new_experiment_is_seen_after_ttl_and_nothing_is_read_meanwhile(repo: Path) -> None:
    write(repo / "tether.yaml", "stages:\n  hello:\n    cmd: python -c \"print('hi')\"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hello")
    assert run_tether(repo, "run", "-n", "first").returncode == 0
    now = [0.0]
    catalog = Catalog(repo, ttl=5.0, clock=lambda: now[0])
    first = catalog.current()
    total, rows, _ = catalog.table("created", True, 0, 10)
    assert (total, [e.name for e in rows]) == (1, ["first"])
    common = repo / ".git"
    before = refs_fingerprint(common)
    assert run_tether(repo, "run", "-n", "second").returncode == 0
    assert refs_fingerprint(common) != before
    assert catalog.current() == first  # within ttl: not looked at
    now[0] = 10.0
    second = wait_for_generation(catalog, first)
    total, rows, summary = catalog.table("created", True, 0, 10)
    assert [e.name for e in rows] == ["second", "first"]
    assert summary["baselines"][0]["count"] == 2
    assert [e.name for e in catalog.snapshot().experiments] == ["first", "second"]
    now[0] = 20.0  # nothing changed: the fingerprint says so, no new generation
    assert catalog.current() == second
    time.sleep(0.2)
    assert catalog.generation == second
    git(repo, "update-ref", "-d", rows[0].ref)  # deleted behind its back
    now[0] = 30.0
    wait_for_generation(catalog, second)
    assert catalog.table("created", True, 0, 10)[0] == 1
