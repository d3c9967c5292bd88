"""Sweep expansion and enqueueing many entries from one snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import exp_refs
from queueing.conftest import tether
from tether.errors import ParamsError, UsageError
from tether.queue.client import QueueRequest, enqueue, open_queue
from tether.queue.sweep import expand, split_values


@pytest.mark.parametrize(("raw", "values"), [
    ("0.1,0.01", ["0.1", "0.01"]),
    ("[1, 2],3", ["[1, 2]", "3"]),
    ("{a: 1, b: 2}", ["{a: 1, b: 2}"]),
    ('"a,b",c', ['"a,b"', "c"]),
    ("[[1,2],[3]],x", ["[[1,2],[3]]", "x"]),
    ("plain", ["plain"]),
])
def test_split_values(raw: str, values: list[str]) -> None:
    assert split_values(raw) == values


def test_empty_item_is_an_error() -> None:
    with pytest.raises(ParamsError):
        split_values("1,,2")


def test_grid_and_repeat() -> None:
    points = expand(["lr=0.1,0.2", "epochs=1,2,3"], repeat=2)
    assert len(points) == 12
    assert points[0].overrides == ("lr=0.1", "epochs=1")
    assert points[0].env == {"TETHER_SEED": "0"} and points[1].env == {"TETHER_SEED": "1"}
    assert points[-1].overrides == ("lr=0.2", "epochs=3")
    assert expand([], 1)[0].overrides == () and expand([], 1)[0].env == {}
    with pytest.raises(UsageError):
        expand([], 0)


def test_hundred_entries_share_one_snapshot_with_unique_names(project: Path) -> None:
    entries = enqueue(project, QueueRequest(overrides=["lr=" + ",".join(
        str(i / 1000) for i in range(1, 101))]))
    assert len(entries) == 100 and len({e.name for e in entries}) == 100
    assert len({e.run_id for e in entries}) == 100
    assert {e.snapshot_ref for e in entries} == {entries[0].snapshot_ref}
    assert [r for r in exp_refs(project) if r.startswith("refs/tether/queue/")] == [
        entries[0].snapshot_ref]
    backend = open_queue(project)
    assert backend.reserved_names(entries[0].baseline) == {e.name for e in entries}
    backend.close()


def test_bad_override_is_refused_before_anything_is_queued(project: Path) -> None:
    proc = tether(project, "run", "--queue", "-S", "lr=0.1,0.2", "-S", "nope=1", check=False)
    assert proc.returncode == 3 and "nope" in proc.stderr
    assert not [r for r in exp_refs(project) if r.startswith("refs/tether/queue/")]


def test_name_taken_by_a_queued_entry_is_refused(project: Path) -> None:
    tether(project, "run", "--queue", "-n", "mine")
    proc = tether(project, "run", "--queue", "-n", "mine", check=False)
    assert proc.returncode == 5 and "queued entry" in proc.stderr


def test_dry_prints_the_grid(project: Path) -> None:
    out = tether(project, "run", "--queue", "--dry", "-S", "lr=1,2", "--repeat", "2").stdout
    assert out.splitlines() == ["lr=1 TETHER_SEED=0", "lr=1 TETHER_SEED=1",
                                "lr=2 TETHER_SEED=0", "lr=2 TETHER_SEED=1"]


def test_a_comma_list_in_place_is_one_value_and_says_so(project: Path) -> None:
    """In place, `-S epochs=1,2` is one value (the text "1,2"): documented, and now said, with
    the --queue command that sweeps; a bracketed list or a plain value says nothing."""
    from helpers import record_of

    proc = tether(project, "run", "-n", "inplace", "-S", "epochs=[1,2]", "-S", "lr=0.5")
    assert "note" not in proc.stderr
    said = tether(project, "run", "-n", "text", "-S", "lr=0.2,0.3", check=False).stderr
    assert ("tether: note: -S lr=0.2,0.3 sets lr to one value, the text '0.2,0.3', in place; "
            "a sweep over its items needs --queue (tether run --queue -S lr=0.2,0.3)") in said
    ref = next(r for r in exp_refs(project) if r.endswith("/text"))
    assert record_of(project, ref)["params"]["params.yaml"]["lr"] == "0.2,0.3"
