"""Artifact remotes through fsspec: local paths, file://, s3://, gs://, sftp://, http(s)://.

A remote holds `objects/<b3|b3d>/<2 hex>/<62 hex>` (same layout as the local
store) and `runs/<fingerprint>.json`. Uploads to object stores are single PUTs,
which appear whole or not at all; elsewhere an upload goes to a temp name and is
then renamed. Downloads land in the local store only after their hash is checked.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tether.cache.hashing import is_dir_key
from tether.cache.objects import ObjectStore, key_from_path, key_path
from tether.cache.runcache import RunCache, valid_fingerprint
from tether.errors import RemoteError
from tether.structs import field, struct
from tether.urls import mask_urls

ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "memory"}
READ_ONLY = {"http", "https"}


class Remote:
    """One artifact remote: a base URL and the fsspec filesystem behind it."""

    def __init__(self, url: str, options: dict[str, Any] | None = None, name: str = "") -> None:
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - fsspec is a core dependency
            raise RemoteError("fsspec is not installed", hint="pip install fsspec") from None
        self.url = url
        self.name = name or mask_urls(url)
        try:
            self.fs, base = fsspec.core.url_to_fs(url, **(options or {}))
        except ImportError as exc:
            raise RemoteError(
                f"remote {self.name}: {exc}",
                hint="install the backend, e.g. pip install 'tether[s3]' for s3://",
            ) from None
        self.base = base.rstrip("/")
        protocols = self.fs.protocol
        self.protocol = protocols if isinstance(protocols, str) else protocols[0]
        self.read_only = self.protocol in READ_ONLY
        self.atomic_put = self.protocol in ATOMIC_PUT

    def __repr__(self) -> str:
        return f"Remote({mask_urls(self.url)!r})"

    def object_path(self, key: str) -> str:
        return f"{self.base}/objects/{key_path(key)}"

    def run_path(self, fingerprint: str) -> str:
        return f"{self.base}/runs/{fingerprint}.json"

    def _check_writable(self) -> None:
        if self.read_only:
            raise RemoteError(f"remote {self.name} ({self.protocol}://) is read-only")

    # -- listing -------------------------------------------------------------

    def list_objects(self) -> dict[str, int] | None:
        """Key -> size of every complete object, in one listing; None if not listable."""
        if self.read_only:
            return None
        prefix = f"{self.base}/objects"
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return {}
        objects: dict[str, int] = {}
        for path, info in found.items():
            rel = path.rstrip("/")
            key = key_from_path("/".join(rel.split("/")[-3:]))
            if key is not None:
                objects[key] = int(info.get("size") or 0)
        return objects

    def list_runs(self) -> set[str] | None:
        if self.read_only:
            return None
        try:
            names = self.fs.find(f"{self.base}/runs")
        except FileNotFoundError:
            return set()
        stems = (str(n).rsplit("/", 1)[-1] for n in names)
        return {s[:-5] for s in stems if s.endswith(".json") and valid_fingerprint(s[:-5])}

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.object_path(key)))

    # -- transfer ------------------------------------------------------------

    def put_file(self, local: str, target: str) -> None:
        """Upload so that `target` appears only when complete."""
        self._check_writable()
        parent = target.rsplit("/", 1)[0]
        if not self.atomic_put:
            self.fs.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            try:
                self.fs.put_file(local, tmp)
                self.fs.mv(tmp, target)
            except BaseException:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
                raise
        else:
            self.fs.put_file(local, target)

    def get_file(self, source: str, local: str) -> None:
        self.fs.get_file(source, local)

    def delete(self, paths: list[str]) -> None:
        self._check_writable()
        if paths:
            self.fs.rm(paths)


@struct
class TransferResult:
    """What a push or pull of objects did."""

    sent: list[str] = field(default_factory=list)  # transferred now
    present: int = 0  # already on the other side
    missing: list[str] = field(default_factory=list)  # on neither side we read from
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    runs: int = 0  # run-cache entries transferred


PushResult = TransferResult
PullResult = TransferResult
# `progress(bytes done, bytes in all)` (0: not known), called from worker threads.
Progress = Callable[[int, int], None]


def _parallel(items: list[str], work: Callable[[str], int], total: int, jobs: int,
              result: TransferResult, progress: Progress | None) -> None:
    """Run `work(key) -> bytes` over items in threads; record successes and failures."""
    if not items:
        return
    lock, done = threading.Lock(), [0]
    with ThreadPoolExecutor(jobs) as pool:
        def one(key: str) -> tuple[str, int | None, str | None]:
            try:
                size = work(key)
            except FileNotFoundError:
                return key, None, None
            except Exception as exc:
                return key, None, f"{exc.__class__.__name__}: {exc}"
            if progress is not None:
                with lock:
                    done[0] += size
                    progress(done[0], total)
            return key, size, None

        for key, size, error in pool.map(one, items):
            if error is not None:
                result.failed.append((key, error))
            elif size is None:
                result.missing.append(key)
            else:
                result.sent.append(key)
                result.bytes += size


def push_objects(
    store: ObjectStore, remote: Remote, keys: Iterable[str], *, jobs: int = 16,
    progress: Progress | None = None,
) -> PushResult:
    """Send the objects of `keys` (directories with their files) that the remote lacks."""
    remote._check_writable()
    result = PushResult()
    wanted: set[str] = set()
    for key in keys:
        if store.path_of(key).is_file():
            wanted |= store.keys_for(key)
        else:
            result.missing.append(key)
    listed = remote.list_objects()
    if listed is None:
        with ThreadPoolExecutor(jobs) as pool:
            flags = dict(zip(wanted, pool.map(remote.exists, wanted), strict=True))
        there = {k for k, flag in flags.items() if flag}
    else:
        there = wanted & set(listed)
    result.present = len(there)
    todo = wanted - there
    # Files first, manifests last: a directory on the remote is then complete.
    for phase in (sorted(k for k in todo if not is_dir_key(k)),
                  sorted(k for k in todo if is_dir_key(k))):
        def upload(key: str) -> int:
            source = store.path_of(key)
            remote.put_file(str(source), remote.object_path(key))
            return source.stat().st_size

        total = sum(store.size(k) for k in phase)
        _parallel(phase, upload, total, jobs, result, progress)
    return result


def pull_objects(
    store: ObjectStore, remote: Remote, keys: Iterable[str], *, jobs: int = 16,
    progress: Progress | None = None,
) -> PullResult:
    """Fetch the objects of `keys` missing locally, each checked before it appears."""
    result = PullResult()
    keys = set(keys)

    def download(key: str) -> int:
        tmp = store.tmp_path()
        try:
            remote.get_file(remote.object_path(key), str(tmp))
            size = tmp.stat().st_size
            store.adopt(tmp, key, source=f"remote {remote.name}")
        finally:
            tmp.unlink(missing_ok=True)
        return size

    manifests = sorted(k for k in keys if is_dir_key(k) and not store.path_of(k).is_file())
    _parallel(manifests, download, 0, jobs, result, progress)
    files: set[str] = {k for k in keys if not is_dir_key(k)}
    for key in keys:
        if is_dir_key(key) and store.path_of(key).is_file():
            files |= {k for _, k in store.manifest(key)}
    todo = sorted(k for k in files if not store.path_of(k).is_file())
    result.present = len(keys | files) - len(todo) - len(manifests)
    _parallel(todo, download, 0, jobs, result, progress)
    return result


def push_runs(cache: RunCache, remote: Remote, fingerprints: Iterable[str], *,
              jobs: int = 16) -> int:
    """Send the run-cache entries the remote lacks; how many were sent."""
    listed = remote.list_runs() or set()
    todo = [fp for fp in set(fingerprints) if fp not in listed and cache.has(fp)]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda fp: remote.put_file(str(cache.path_of(fp)), remote.run_path(fp)),
                      todo))
    return len(todo)


def pull_runs(cache: RunCache, remote: Remote, fingerprints: Iterable[str], *,
              jobs: int = 16) -> int:
    """Fetch the run-cache entries missing locally; how many arrived."""
    todo = [fp for fp in set(fingerprints) if valid_fingerprint(fp) and not cache.has(fp)]

    def one(fp: str) -> bool:
        try:
            cache.put_raw(fp, remote.fs.cat_file(remote.run_path(fp)))
        except (FileNotFoundError, ValueError):
            return False
        return True

    with ThreadPoolExecutor(jobs) as pool:
        return sum(pool.map(one, todo))
