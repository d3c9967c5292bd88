"""Declared data sources put in place for a run, pinned in tether.lock, checked for change.

For each source a run needs (a stage depends on its path, or on a folder around it):

1. the file at `path` already hashes to the pinned key: nothing to do, no request;
2. the pinned object is in the repository cache: restored from it, no request;
3. it is on the artifact remote: pulled (checked by hash), then restored;
4. else the source is fetched (`cache/sources.py`), verified against the pin when there
   is one, and pinned when there was none.

With `prepare`, the file at `path` is derived: the command runs once per (source key,
subset values, command), with the fetched file in `TETHER_DATA_RAW`, the file to write in
`TETHER_DATA_OUT` and the subset as JSON in `TETHER_DATA_SUBSET`; its result is cached by
that triple (`.tether/cache/prepared/`), so going back to a subset used before costs a
restore. A run never asks the source whether it changed (that is `tether status`, one
metadata request per source); `tether data update NAME` accepts a changed source.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import blake3

from tether.cache.hashing import StatCache
from tether.cache.objects import ObjectStore
from tether.cache.sources import Progress, SourceIdentity, describe_change, fetch_source, probe
from tether.errors import DataSourceError, RemoteError, TetherError
from tether.layout import CACHE_DIR, cache_root, tmp_dir
from tether.lockfile import SourcePin, read_pins, write_pins
from tether.pathguard import WorkTreeGuard, overlaps
from tether.spec import DataSource, Pipeline
from tether.structs import field, struct
from tether.urls import mask_urls

if TYPE_CHECKING:
    from tether.cache.remote import Remote


@struct
class SourceAccess:
    """How sources are reached: fsspec options per source, the artifact remote (None:
    none configured), and the progress callback of downloads."""

    options: Callable[[str], dict[str, object]] = field(default=lambda name: {})
    remote: Callable[[], Remote | None] = field(default=lambda: None)
    progress: Callable[[str], Progress | None] = field(default=lambda name: None)


def project_access(root: Path,
                   progress: Callable[[str], Progress | None] = lambda name: None,
                   ) -> SourceAccess:
    """How the project at `root` reaches its sources: options from its config, its
    default artifact remote (if any)."""
    from tether.config import source_options
    from tether.project import open_remote

    return SourceAccess(options=lambda name: source_options(root, name),
                        remote=lambda: open_remote(root), progress=progress)


def needed_sources(pipeline: Pipeline, order: Iterable[str]) -> list[DataSource]:
    """The sources a stage in `order` depends on (by path, or a folder around it)."""
    deps = [dep for name in order for dep in pipeline.stages[name].deps]
    return [s for s in pipeline.data.values() if any(overlaps(s.path, dep) for dep in deps)]


def _current_pin(source: DataSource, pins: dict[str, SourcePin]) -> SourcePin | None:
    """The source's pin, unless the spec now names another source (then: fetch anew)."""
    pin = pins.get(source.name)
    return pin if pin is not None and pin.source == mask_urls(source.source) else None


def _wanted(source: DataSource, pin: SourcePin | None) -> str | None:
    """The key the file at `path` must have, when the pin says."""
    if pin is None:
        return None
    if source.prepare is None:
        return pin.key
    same = pin.prepare == source.prepare and pin.subset == dict(source.subset)
    return pin.prepared if same else None


def _pull(store: ObjectStore, access: SourceAccess, key: str) -> bool:
    """Whether `key` is in the store, pulling it from the artifact remote if it is there."""
    if store.has(key):
        return True
    try:
        remote = access.remote()
    except RemoteError:
        return False
    if remote is None:
        return False
    from tether.cache.remote import pull_objects

    try:
        pull_objects(store, remote, {key})
    except TetherError:
        return False
    return store.has(key)


def ensure_sources(root: Path, sources: list[DataSource], store: ObjectStore,
                   hashes: StatCache, access: SourceAccess) -> list[tuple[str, str]]:
    """Put each source's file in place under `root`, pinning new ones in `root`'s
    tether.lock; (name, what was done) for each."""
    pins = read_pins(root)
    done: list[tuple[str, str]] = []
    changed = False
    guard = WorkTreeGuard(root)
    for source in sources:
        target = guard.target(source.path, where=f"data source {source.name!r}")
        pin = _current_pin(source, pins)
        wanted = _wanted(source, pin)
        if wanted is not None and hashes.hash_path(target) == wanted:
            done.append((source.name, "up to date"))
            continue
        if wanted is not None and _pull(store, access, wanted):
            store.restore(wanted, target)
            done.append((source.name, "restored from the cache"))
            continue
        new_pin, how = _materialize(root, source, pin, store, access)
        store.restore(new_pin.prepared or new_pin.key, target)
        if new_pin != pins.get(source.name):
            pins[source.name] = new_pin
            changed = True
        done.append((source.name, how))
    if changed:
        write_pins(root, pins)
    if sources:
        from tether.cache.tracked import ignore_outputs
        from tether.gitstore.git import Git

        ignore_outputs(Git(root), [source.path for source in sources])
    return done


def _materialize(root: Path, source: DataSource, pin: SourcePin | None, store: ObjectStore,
                 access: SourceAccess) -> tuple[SourcePin, str]:
    """The raw bytes in the store (from it, the remote, or the source) and, with
    `prepare`, the derived file; the pin that says so."""
    if pin is not None and _pull(store, access, pin.key):
        how = "restored from the cache"
    else:
        key, identity = fetch_source(store, source.source, expect=pin.key if pin else None,
                                     name=source.name,
                                     options=access.options(source.name),
                                     progress=access.progress(source.name))
        how = "fetched and verified against the pin" if pin else "fetched and pinned"
        if pin is None:
            pin = SourcePin(source=mask_urls(source.source), path=source.path, key=key,
                            size=identity.size, etag=identity.etag, mtime=identity.mtime)
    pin = SourcePin(source=pin.source, path=source.path, key=pin.key, size=pin.size,
                    etag=pin.etag, mtime=pin.mtime, subset=dict(source.subset),
                    prepare=source.prepare,
                    prepared=_wanted(source, pin) if source.prepare else None)
    if source.prepare is None:
        return pin, how
    prepared = _prepare(root, source, pin.key, store)
    if pin.prepared is not None and prepared != pin.prepared:
        raise DataSourceError(
            f"data source {source.name!r}: `prepare` made a file hashing to {prepared}, but "
            f"tether.lock pins {pin.prepared}: the command is not deterministic",
            hint=f"make it deterministic, or accept the new file: tether data update "
            f"{source.name}",
        )
    pin.prepared = prepared
    return pin, how + ", prepared"


def _prepared_record(root: Path, raw_key: str, source: DataSource) -> Path:
    basis = json.dumps({"raw": raw_key, "subset": dict(source.subset),
                        "prepare": source.prepare}, sort_keys=True, default=str)
    digest = blake3.blake3(basis.encode()).hexdigest()
    return cache_root(root) / CACHE_DIR / "prepared" / digest


def _prepare(root: Path, source: DataSource, raw_key: str, store: ObjectStore) -> str:
    """The key of the file `prepare` derives from the raw object and the subset, made
    once per (raw key, subset, command) and then taken from the cache."""
    record = _prepared_record(root, raw_key, source)
    try:
        known = record.read_text().strip()
        if store.has(known):
            return known
    except OSError:
        pass
    work = tmp_dir(root) / f"prepare-{source.name}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    raw, out = work / "raw", work / "out"
    try:
        store.restore(raw_key, raw)
        env = {**os.environ, "TETHER_DATA_RAW": str(raw), "TETHER_DATA_OUT": str(out),
               "TETHER_DATA_SUBSET": json.dumps(dict(source.subset), default=str)}
        proc = subprocess.run(source.prepare or "", shell=True, cwd=root, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            why = (f"exited {proc.returncode}" if proc.returncode
                   else "wrote nothing to $TETHER_DATA_OUT")
            raise DataSourceError(
                f"data source {source.name!r}: `prepare` {why}\n{proc.stderr[-2000:]}",
                hint="fix the command in the spec's `data:` section",
            )
        key = store.save(out, link=False)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(key + "\n")
    return key


def update_sources(root: Path, sources: list[DataSource], store: ObjectStore,
                   hashes: StatCache, access: SourceAccess) -> list[tuple[str, str]]:
    """Accept each source as it is now: re-fetch and re-pin it when it changed."""
    pins = read_pins(root)
    stale = []
    for source in sources:
        pin = _current_pin(source, pins)
        if pin is None or _change(source, pin, access) is not None:
            pins.pop(source.name, None)
            stale.append(source.name)
    if stale:
        write_pins(root, pins)
    done = ensure_sources(root, sources, store, hashes, access)
    return [(name, how if name in stale else "unchanged") for name, how in done]


def _change(source: DataSource, pin: SourcePin, access: SourceAccess) -> str | None:
    now = probe(source.source, access.options(source.name))
    return describe_change(SourceIdentity(pin.size, pin.etag, pin.mtime), now)


def source_report(root: Path, pipeline: Pipeline, store: ObjectStore,
                  access: SourceAccess) -> list[tuple[str, str]]:
    """(name, state) of each declared source for `tether status`: one metadata request
    per pinned source, none for the others."""
    pins = read_pins(root)
    report = []
    for source in pipeline.data.values():
        pin = _current_pin(source, pins)
        if pin is None:
            report.append((source.name, "not pinned yet: `tether run` or `tether data fetch "
                           f"{source.name}` fetches and pins it"))
            continue
        try:
            change = _change(source, pin, access)
        except DataSourceError as exc:
            report.append((source.name, f"pinned; cannot check the source: {exc.message}"))
            continue
        if change is not None:
            report.append((source.name, f"source changed since pinned ({change}): runs keep "
                           f"the pinned bytes; accept it with `tether data update "
                           f"{source.name}`"))
        else:
            cached = "in the cache" if store.has(pin.key) else "not in the cache"
            report.append((source.name, f"pinned, source unchanged ({cached})"))
    return report


def select_sources(pipeline: Pipeline, names: list[str]) -> list[DataSource]:
    """The sources named (all when none is), a usage error for an unknown name."""
    from tether.errors import UsageError, close_matches

    if not pipeline.data:
        raise UsageError("the spec declares no data sources",
                         hint="declare one under `data:` in tether.yaml (see docs/spec.md)")
    unknown = [name for name in names if name not in pipeline.data]
    if unknown:
        close = close_matches(unknown[0], list(pipeline.data), n=1)
        raise UsageError(f"no data source named {unknown[0]!r}",
                         hint=f"did you mean {close[0]!r}?" if close
                         else f"declared: {', '.join(pipeline.data)}")
    return [pipeline.data[name] for name in names] if names else list(pipeline.data.values())
