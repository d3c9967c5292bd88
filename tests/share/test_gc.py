"""gc keeps exactly what must be kept, locally and on a remote."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from helpers import exp_refs
from share.conftest import run_exp, tether_ok
from tether.cache.objects import ObjectStore
from tether.cache.runcache import RunCache
from tether.experiments.artifacts import record_outputs
from tether.experiments.gc import gc
from tether.project import object_store
from tether.record.record import RunRecord


def _records(root: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    found = {}
    for ref in exp_refs(root):
        record = json.loads(git(root, "cat-file", "blob", f"{ref}:.tether/record.json"))
        found[record["name"]] = record
    return found


def _keys(store: ObjectStore, record: dict) -> set[str]:  # type: ignore[type-arg]
    keys: set[str] = set()
    for key in record_outputs(RunRecord.from_json(record)).values():
        keys |= store.keys_for(key)
    return keys


def test_gc_keeps_exactly_what_must_be_kept(alice: Path) -> None:
    store = object_store(alice)
    run_exp(alice, "tagged", 1)
    git(alice, "add", "tether.lock")
    git(alice, "commit", "-q", "-m", "lock 1")
    git(alice, "tag", "v1")
    run_exp(alice, "at-head", 5)
    git(alice, "add", "tether.lock")
    git(alice, "commit", "-q", "-m", "lock 5")
    run_exp(alice, "old", 2)
    run_exp(alice, "branched", 3)
    run_exp(alice, "new", 4)
    records = _records(alice)
    git(alice, "branch", "keep-me", exp_refs(alice)[next(
        r for r in exp_refs(alice) if r.endswith("/branched"))])
    stray = alice / "stray.bin"
    stray.write_text("referenced by nothing\n")
    stray_key = store.save(stray, link=False)
    tether_ok(alice, "push", "--all")  # also fills the remote with every object

    runs = RunCache(alice)
    fp = {n: r["stages"][0]["fingerprint"] for n, r in records.items()}
    # Kept: outputs in the tag's and HEAD's lock files, of the branched and of the
    # new experiment, plus everything the run-cache entries of kept experiments name.
    kept = set().union(*(_keys(store, records[n])
                         for n in ("tagged", "at-head", "branched", "new")))
    for name in ("branched", "new"):
        kept |= set((runs.get(fp[name]) or {})["outs"].values())
    before = set(store.iter_keys())
    doomed = before - kept
    old_outs = _keys(store, records["old"])
    assert old_outs - kept and old_outs - kept <= doomed  # model.bin, manifest, part-2.txt
    assert stray_key in doomed
    shared = next(k for k in old_outs if k in _keys(store, records["new"]) and k.startswith("b3:"))
    assert shared not in doomed  # features/shared.txt is in every run

    old, branched = records["old"]["created_at"], records["branched"]["created_at"]
    now = records["new"]["created_at"] + 100
    older_than = now - (old + branched) / 2

    dry = gc(alice, older_than, dry=True, now=now)
    assert {k for k, _ in dry.removed} == doomed
    assert set(store.iter_keys()) == before

    result = gc(alice, older_than, now=now)
    assert {k for k, _ in result.removed} == doomed
    assert result.bytes_freed > 0
    assert set(store.iter_keys()) == kept
    assert all(store.verify(k) for k in kept)
    assert set(result.runs_removed) == {fp["old"], fp["tagged"], fp["at-head"]}
    assert set(runs.fingerprints()) == {fp["branched"], fp["new"]}

    remote = gc(alice, older_than, "store", now=now)
    remote_removed = {k for k, _ in remote.removed}
    assert remote_removed == doomed - {stray_key}  # the stray was never pushed
    assert {p.name for p in (alice.parent / "artifacts" / "runs").iterdir()} == {
        f"{fp[n]}.json" for n in ("branched", "new")}


def test_gc_cli_without_cutoff_keeps_every_experiment(alice: Path) -> None:
    store = object_store(alice)
    run_exp(alice, "one", 1)
    run_exp(alice, "two", 2)
    before = set(store.iter_keys())
    stray = alice / "stray.bin"
    stray.write_text("nothing refers to me\n")
    key = store.save(stray, link=False)
    out = tether_ok(alice, "gc", "--dry")
    assert f"would remove  {key}" in out and store.has(key)
    out = tether_ok(alice, "gc")
    assert f"removed  {key}" in out and "freed" in out
    assert set(store.iter_keys()) == before


def test_gc_names_the_experiment_and_path_of_what_it_removes(alice: Path) -> None:
    """`gc --dry` says which experiment and path used each object, or "unreferenced"."""
    store = object_store(alice)
    run_exp(alice, "old", 2)
    run_exp(alice, "new", 4)
    records = _records(alice)
    stray = alice / "stray.bin"
    stray.write_text("referenced by nothing\n")
    stray_key = store.save(stray, link=False)
    now = records["new"]["created_at"] + 100
    older_than = now - (records["old"]["created_at"] + records["new"]["created_at"]) / 2

    dry = gc(alice, older_than, dry=True, now=now)
    outs = RunRecord.from_json(records["old"]).stages[0].outs
    assert dry.used_by[outs["model.bin"]] == ["model.bin of old"]
    assert dry.used_by[outs["features"]] == ["features of old"]  # the directory's manifest
    part = next(k for k, _ in dry.removed if "features/part-2.txt of old" in
                dry.used_by.get(k, []))
    assert store.has(part)  # dry: nothing removed
    assert stray_key not in dry.used_by
    assert set(dry.used_by) <= {k for k, _ in dry.removed}

    out = tether_ok(alice, "gc", "--dry")  # no cutoff: every experiment is kept
    assert out.splitlines()[0] == f"would remove  {stray_key}  22 B  unreferenced"
