"""Fetching declared data sources through fsspec: identity, resumable download, verify.

A source is any URL fsspec opens (`https://`, `s3://`, `gs://`, `file://`) or a local
path. `probe` asks the filesystem what it knows of the object without reading it (an
HTTP HEAD, an S3 HEAD, a stat): size, ETag, modification time. `fetch_source` streams
the bytes into the object store's tmp folder, hashing as they arrive; an interrupted
download keeps its partial file there (with the identity it was started against) and
the next attempt continues it with an HTTP Range request, or a seek elsewhere. The
object appears in the store only once complete, and only when it hashes to the pinned
key (when there is one): a different body is refused and deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import blake3

from tether.cache.hashing import CHUNK, FILE_PREFIX
from tether.cache.objects import ObjectStore
from tether.errors import DataSourceError, TetherError
from tether.spec.values import parse_duration
from tether.structs import struct
from tether.urls import mask_urls

Progress = Callable[[int, int], None]
STREAMED = {"http", "https"}
ATTEMPTS = 3
# How long an HTTP server may stay silent (connecting, answering, or between bytes of
# the body) before an attempt fails; `timeout:` in the source's options overrides it.
# There is no limit on a whole download: aiohttp's default (5 minutes in all) would cut
# every large file, and a HEAD to a server that never answers would hang `tether status`.
SILENCE_TIMEOUT = 60.0
TIMEOUT_HINT = ("check that the server is up; a slow one gets more time with "
                "`sources: {NAME: {timeout: 5m}}` in .tether/config.yaml")


@struct(frozen=True)
class SourceIdentity:
    """What a filesystem says about an object without reading it (None: not given)."""

    size: int | None
    etag: str | None
    mtime: str | None

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "etag": self.etag, "mtime": self.mtime}


def _http_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The fsspec options, with tether's `timeout` (seconds of silence allowed, default
    SILENCE_TIMEOUT) turned into aiohttp's for an http(s) source; an explicit
    `client_kwargs: {timeout: ...}` is left as given."""
    import fsspec  # type: ignore[import-untyped]

    options = dict(options)
    given = options.pop("timeout", None)
    try:
        silence = SILENCE_TIMEOUT if given is None else parse_duration(given)
    except ValueError as exc:
        raise DataSourceError(f"source {mask_urls(url)}: option timeout: {exc}") from None
    if fsspec.core.split_protocol(url)[0] not in STREAMED:
        return options
    client = dict(options.get("client_kwargs") or {})
    try:
        import aiohttp
    except ImportError:  # url_to_fs says which extra to install
        return options
    client.setdefault("timeout", aiohttp.ClientTimeout(total=None, sock_connect=silence,
                                                       sock_read=silence))
    options["client_kwargs"] = client
    return options


def _filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **_http_options(url, options))
    except ImportError as exc:
        raise DataSourceError(
            f"source {mask_urls(url)}: {exc}",
            hint="install the backend: pip install 'tether[http]' for https://, "
            "'tether[s3]' for s3://",
        ) from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return fs, path, protocol


def _identity(info: Mapping[str, Any]) -> SourceIdentity:
    def first(*names: str) -> str | None:
        for name in names:
            value = info.get(name)
            if value not in (None, ""):
                return str(value)
        return None

    size = info.get("size")
    return SourceIdentity(size=int(size) if isinstance(size, int | float) else None,
                          etag=first("ETag", "etag", "Etag", "md5Hash"),
                          mtime=first("mtime", "LastModified", "Last-Modified", "last_modified",
                                      "updated"))


def probe(url: str, options: Mapping[str, Any] | None = None) -> SourceIdentity:
    """The source's identity as its filesystem reports it (one metadata request)."""
    fs, path, _ = _filesystem(url, options or {})
    try:
        return _identity(fs.info(path))
    except FileNotFoundError as exc:
        # fsspec's HTTP filesystem reports every failure of its HEAD and GET so, a server
        # that is down or silent included: that one is unreachable, not missing.
        cause = exc.__cause__
        if isinstance(cause, TimeoutError):
            raise DataSourceError(f"source {mask_urls(url)} cannot be reached: no answer "
                                  "within the timeout",
                                  hint=TIMEOUT_HINT) from None
        if isinstance(cause, OSError) and not isinstance(cause, FileNotFoundError):
            raise DataSourceError(
                f"source {mask_urls(url)} cannot be reached: {cause}") from None
        raise DataSourceError(
            f"source {mask_urls(url)} cannot be read: it does not exist, or it refused "
            "access",
            hint="check `source:` in the spec; credentials go in the backend's environment "
            "or in .tether/config.local.yaml (sources: NAME: {fsspec options})",
        ) from None
    except TetherError:
        raise
    except Exception as exc:  # every backend raises its own errors: name the source
        raise DataSourceError(f"source {mask_urls(url)} cannot be reached: {exc}") from None


def describe_change(pinned: SourceIdentity, now: SourceIdentity) -> str | None:
    """How the source differs from its pin ('ETag "a" -> "b"'), None when it does not
    (only what both sides report is compared; the ETag decides when both have one)."""
    if pinned.etag and now.etag:
        return None if pinned.etag == now.etag else f"ETag {pinned.etag} -> {now.etag}"
    if pinned.size is not None and now.size is not None and pinned.size != now.size:
        return f"size {pinned.size} -> {now.size} bytes"
    if pinned.mtime and now.mtime and pinned.mtime != now.mtime:
        return f"modified {pinned.mtime} -> {now.mtime}"
    return None


def _partial_paths(store: ObjectStore, url: str) -> tuple[Path, Path]:
    folder = store.dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    name = "source-" + blake3.blake3(url.encode()).hexdigest()[:32]
    return folder / f"{name}.part", folder / f"{name}.json"


def _resume_offset(part: Path, meta: Path, identity: SourceIdentity) -> int:
    """Bytes of an earlier attempt at the same object to continue from (0: start over)."""
    try:
        started = json.loads(meta.read_text())
        if started == identity.to_json() and part.is_file():
            return part.stat().st_size
    except (OSError, ValueError):
        pass
    part.unlink(missing_ok=True)
    meta.write_text(json.dumps(identity.to_json()))
    return 0


def _open_at(fs: Any, path: str, protocol: str, offset: int, size: int | None) -> tuple[Any, int]:
    """The object opened for reading from `offset`; (file, where it really starts)."""
    if protocol in STREAMED:
        # The filesystem's own headers (credentials from `sources:` options) are kept.
        headers = dict(getattr(fs, "kwargs", {}).get("headers") or {})
        if offset:
            headers["Range"] = f"bytes={offset}-"
        # One streamed GET (block_size=0), not one request per block.
        stream = fs.open(path, "rb", block_size=0, size=size or 1, headers=headers)
        status = getattr(getattr(stream, "r", None), "status", 200)
        return stream, offset if status == 206 else 0  # 200: the server ignored the Range
    stream = fs.open(path, "rb")
    if offset:
        stream.seek(offset)
    return stream, offset


def _download(fs: Any, path: str, protocol: str, part: Path, identity: SourceIdentity,
              progress: Progress | None) -> str:
    """Append the rest of the object to `part` (one attempt); the key of the whole file,
    hashed as the bytes arrive (a resumed file's first part is read back once)."""
    offset = part.stat().st_size if part.exists() else 0
    total = identity.size or 0
    stream, start = _open_at(fs, path, protocol, offset, identity.size)
    hasher = blake3.blake3()
    with stream, open(part, "r+b" if start else "wb") as out:
        out.truncate(start)
        if start:
            hasher.update_mmap(part)
        out.seek(start)
        done = start
        while chunk := stream.read(CHUNK * 16):
            out.write(chunk)
            hasher.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if identity.size is not None and part.stat().st_size != identity.size:
        raise OSError(f"the download ended after {part.stat().st_size} of "
                      f"{identity.size} bytes")
    return FILE_PREFIX + hasher.hexdigest()


def fetch_source(store: ObjectStore, url: str, *, expect: str | None = None, name: str = "NAME",
                 options: Mapping[str, Any] | None = None,
                 progress: Progress | None = None) -> tuple[str, SourceIdentity]:
    """Download the source into the store; (its key, its identity when fetched).

    With `expect` (the pinned key) bytes hashing to anything else are refused
    (DataSourceError) and deleted. A failed attempt is retried from where it stopped;
    after the last one the partial file is kept for the next call to continue."""
    fs, path, protocol = _filesystem(url, options or {})
    identity = probe(url, options)
    part, meta = _partial_paths(store, url)
    _resume_offset(part, meta, identity)
    key = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            key = _download(fs, path, protocol, part, identity, progress)
            break
        except TetherError:
            raise
        except Exception as exc:  # any backend's network error: continue from the part
            status = getattr(exc, "status", None)  # an HTTP 4xx will not go away
            refused = isinstance(status, int) and 400 <= status < 500
            if attempt == ATTEMPTS or refused:
                reason = ("the server sent nothing within the timeout"
                          if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__)
                raise DataSourceError(
                    f"source {mask_urls(url)}: the download failed {attempt} time(s) "
                    f"({reason})",
                    hint="run the same command again: it continues from the "
                    f"{part.stat().st_size if part.exists() else 0} bytes already fetched",
                ) from None
    if expect is not None and key != expect:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise DataSourceError(
            f"data source {name!r} ({mask_urls(url)}) changed: its bytes hash to {key}, but "
            f"tether.lock pins {expect}; nothing was kept",
            hint=f"to accept the new content: tether data update {name} (then commit "
            "tether.lock); to get the pinned bytes, pull them from a machine that has "
            "them (tether pull)",
        )
    store.install(part, key)
    meta.unlink(missing_ok=True)
    return key, identity
