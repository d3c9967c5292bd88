"""The local content-addressed store of outputs under `.tether/cache/objects/`.

A file is stored under its key (`b3:<hex>` → `objects/b3/<2 hex>/<62 hex>`); a
directory as its files plus a manifest object (`b3d:<hex>` → `objects/b3d/...`)
whose bytes hash to the directory's key. Objects are read-only and appear only
when complete (written to `objects/tmp/` and renamed). Content is checked while
it is restored, so a corrupt object is reported, never used.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import blake3

from tether.cache import links
from tether.cache.hashing import (
    CHUNK,
    DIR_PREFIX,
    FILE_PREFIX,
    StatCache,
    hash_file_uncached,
    hash_manifest,
    is_dir_key,
    manifest_bytes,
    manifest_key,
    parse_manifest,
)
from tether.errors import CacheCorruptError, RemoteError, UnsafePathError
from tether.layout import objects_dir

KEY_PATTERN = re.compile(r"^(b3|b3d):[0-9a-f]{64}$")
JOBS = min(8, (os.cpu_count() or 1) * 2)


def valid_key(key: str) -> bool:
    return bool(KEY_PATTERN.fullmatch(key))


def key_path(key: str) -> str:
    """The relative path of an object, the same locally and on remotes."""
    if not valid_key(key):
        raise ValueError(f"not an object key: {key!r}")
    algo, _, hexdigest = key.partition(":")
    return f"{algo}/{hexdigest[:2]}/{hexdigest[2:]}"


def key_from_path(rel: str) -> str | None:
    """The key an object path (`b3/ab/cdef...`) stands for, or None."""
    parts = rel.replace("\\", "/").strip("/").split("/")
    if len(parts) < 3:
        return None
    key = f"{parts[-3]}:{parts[-2]}{parts[-1]}"
    return key if valid_key(key) else None


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy `src` to the new file `dst`, returning the key of the bytes copied."""
    hasher = blake3.blake3()
    with open(src, "rb") as source, open(dst, "xb") as target:
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            target.write(chunk)
    return FILE_PREFIX + hasher.hexdigest()


class ObjectStore:
    """Objects of the project at `root` (the git work tree's top level)."""

    def __init__(self, root: Path, *, link_order: Sequence[str]) -> None:
        self.root = Path(root)
        self.dir = objects_dir(self.root)
        self.link_order = tuple(link_order)  # `cache.link`: see tether.project.object_store

    # -- paths and questions -----------------------------------------------

    def path_of(self, key: str) -> Path:
        return self.dir / key_path(key)

    def tmp_path(self) -> Path:
        folder = self.dir / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / os.urandom(16).hex()

    def has(self, key: str) -> bool:
        """Whether the object (for a directory: its manifest and every file) is here."""
        if not valid_key(key) or not self.path_of(key).is_file():
            return False
        if is_dir_key(key):
            return all(self.path_of(k).is_file() for _, k in self.manifest(key))
        return True

    def manifest(self, key: str) -> list[tuple[str, str]]:
        """The (relative path, file key) entries of a directory object, checked."""
        path = self.path_of(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RemoteError(f"directory object {key} is not in the local cache") from None
        if DIR_PREFIX + blake3.blake3(data).hexdigest() != key:
            raise CacheCorruptError(
                f"cache object {path} (manifest of {key}) is corrupt: its content no longer "
                "matches its hash", hint="delete it and run `tether pull` or re-run the stage",
            )
        entries = parse_manifest(data, where=f"directory manifest {key}")
        for rel, file_key in entries:
            if not valid_key(file_key) or is_dir_key(file_key):
                raise UnsafePathError(f"refused directory manifest {key}: entry {rel!r} has "
                                      f"{file_key!r}, which is not a file object key")
        return entries

    def keys_for(self, key: str) -> set[str]:
        """`key` and, for a directory, the keys of all its files (if its manifest is here)."""
        keys = {key}
        if is_dir_key(key) and self.path_of(key).is_file():
            keys.update(k for _, k in self.manifest(key))
        return keys

    def iter_keys(self) -> Iterator[str]:
        for algo in ("b3", "b3d"):
            base = self.dir / algo
            if not base.is_dir():
                continue
            for fan in os.scandir(base):
                if fan.is_dir():
                    for entry in os.scandir(fan.path):
                        key = f"{algo}:{fan.name}{entry.name}"
                        if valid_key(key):
                            yield key

    def size(self, key: str) -> int:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            return 0

    def verify(self, key: str) -> bool:
        """Whether the object (and, for a directory, every file) matches its key."""
        path = self.path_of(key)
        if not path.is_file():
            return False
        if is_dir_key(key):
            try:
                entries = self.manifest(key)
            except CacheCorruptError:
                return False
            return all(self.verify(k) for _, k in entries)
        return hash_file_uncached(path) == key

    # -- writing -----------------------------------------------------------

    def adopt(self, tmp: Path, key: str, *, source: str) -> None:
        """Move a downloaded temp file into place if it hashes to `key`, else drop it."""
        actual = (
            DIR_PREFIX + blake3.blake3(tmp.read_bytes()).hexdigest()
            if is_dir_key(key) else hash_file_uncached(tmp)
        )
        if actual != key:
            tmp.unlink(missing_ok=True)
            raise CacheCorruptError(
                f"object {key} from {source} is corrupt: its content hashes to {actual}",
                hint="the remote copy is damaged: push it again from a machine that has it",
            )
        self._install(tmp, key)

    def install(self, tmp: Path, key: str) -> None:
        """Move `tmp`, whose bytes the caller has just hashed to `key`, into place."""
        self._install(tmp, key)

    def _install(self, tmp: Path, key: str) -> None:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o444)
        os.replace(tmp, target)

    def save_bytes(self, data: bytes, key: str, *, replace: bool = False) -> None:
        """Store `data` under `key` unless there (with `replace`: even if there)."""
        if self.path_of(key).is_file() and not replace:
            return
        tmp = self.tmp_path()
        tmp.write_bytes(data)
        self._install(tmp, key)

    def save(
        self, path: Path, *, link: bool = True, digest: str | None = None,
        cache: StatCache | None = None,
    ) -> str:
        """Store a file or directory; return its key (the one `StatCache.hash_path` gives).

        `digest`, when known, saves reading unchanged content again. With `link`,
        the workspace copy is then replaced by a reflink or (if configured) a
        read-only hardlink to the object; with plain copies it is left as it is.
        The workspace bytes win: an object already there is verified before it is
        linked over them, and a corrupt one is replaced by them.
        """
        path = Path(path)
        if path.is_dir():
            entries = hash_manifest(cache or StatCache(None), path)
            from concurrent.futures import ThreadPoolExecutor  # only for directories

            with ThreadPoolExecutor(max_workers=JOBS) as pool:
                saved = list(pool.map(
                    lambda e: self._save_file(path / e[0], e[1], link), entries
                ))
            entries = [(rel, key) for (rel, _), key in zip(entries, saved, strict=True)]
            key = manifest_key(entries)
            if not self.verify_manifest(key):
                self.save_bytes(manifest_bytes(entries), key, replace=True)
            return key
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such output to cache")
        if digest is None and cache is not None:
            digest = cache.hash_file(path)
        return self._save_file(path, digest, link)

    def verify_manifest(self, key: str) -> bool:
        """Whether a directory's manifest object is here and matches its key."""
        try:
            data = self.path_of(key).read_bytes()
        except FileNotFoundError:
            return False
        return DIR_PREFIX + blake3.blake3(data).hexdigest() == key

    def _save_file(self, path: Path, digest: str | None, link: bool) -> str:
        if digest is not None and self.path_of(digest).is_file() and self.verify(digest):
            if link:
                self._link_back(digest, path)
            return digest
        # No object yet, or a corrupt one: store these bytes (the ones the stage wrote).
        tmp = self.tmp_path()
        try:
            # A reflinked copy is checked: the file may have changed since it was hashed,
            # and an object must hold exactly the bytes of its key.
            if (digest is not None and "reflink" in self.link_order
                    and links.reflink(path, tmp) and hash_file_uncached(tmp) == digest):
                key = digest
            else:
                tmp.unlink(missing_ok=True)
                key = _copy_hashing(path, tmp)
            self._install(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)
        if link:
            self._link_back(key, path)
        return key

    def _link_back(self, key: str, path: Path) -> None:
        """Replace `path` by a reflink or hardlink of its (verified) object, if configured.

        A copy of the object would only put the same bytes back: it is never made.
        """
        order = [m for m in self.link_order if m != "copy"]
        if not order:
            return
        with contextlib.suppress(OSError):
            if "hardlink" in order and os.path.samefile(path, self.path_of(key)):
                return
            tmp = path.with_name(f".{path.name}.tether-link")
            tmp.unlink(missing_ok=True)
            for mode in order:
                if mode == "reflink" and links.reflink(self.path_of(key), tmp):
                    break
                if mode == "hardlink":
                    try:
                        os.link(self.path_of(key), tmp)
                    except OSError:
                        continue
                    links.make_read_only(tmp)
                    break
            else:
                return
            os.replace(tmp, path)

    # -- reading -----------------------------------------------------------

    def restore(self, key: str, dest: Path) -> None:
        """Write the object at `dest` (replacing what is there), checking its content."""
        if not valid_key(key):
            raise RemoteError(f"{key!r} is not an object key (in {dest})")
        if is_dir_key(key):
            self._restore_dir(key, Path(dest))
        else:
            dest = Path(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tether-tmp")
            self._restore_file(key, tmp, dest)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(tmp, dest)

    def _restore_file(self, key: str, tmp: Path, dest: Path) -> None:
        source = self.path_of(key)
        if not source.is_file():
            raise RemoteError(
                f"object {key} for {dest} is not in the local cache",
                hint="pull it: `tether checkout` fetches missing objects from the default remote",
            )
        tmp.unlink(missing_ok=True)
        order = [m for m in self.link_order if m != "copy"]
        mode = links.place(source, tmp, order) if order else None
        try:
            actual = _copy_hashing(source, tmp) if mode is None else hash_file_uncached(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if actual != key:
            tmp.unlink(missing_ok=True)
            raise CacheCorruptError(
                f"cache object {source} is corrupt: it should hash to {key} but hashes to "
                f"{actual}; {dest} was not restored from it",
                hint="delete that object, then `tether checkout` pulls it again from the "
                "remote (or re-run the stage that produces it)",
            )
        if mode is None:
            tmp.chmod(0o644)

    def _restore_dir(self, key: str, dest: Path) -> None:
        entries = self.manifest(key)
        build = dest.with_name(f".{dest.name}.tether-tmp")
        if build.exists():
            shutil.rmtree(build)
        build.mkdir(parents=True)
        try:
            def one(entry: tuple[str, str]) -> None:
                target = build / entry[0]
                target.parent.mkdir(parents=True, exist_ok=True)
                self._restore_file(entry[1], target, dest / entry[0])

            from concurrent.futures import ThreadPoolExecutor  # only for directories

            with ThreadPoolExecutor(max_workers=JOBS) as pool:
                list(pool.map(one, entries))
            old = dest.with_name(f".{dest.name}.tether-old")
            if dest.exists() or dest.is_symlink():
                if dest.is_dir() and not dest.is_symlink():
                    os.replace(dest, old)
                else:
                    dest.unlink()
            os.replace(build, dest)
            if old.exists():
                shutil.rmtree(old)
        finally:
            if build.exists():
                shutil.rmtree(build)

    def remove(self, key: str) -> int:
        """Delete one object; the bytes freed."""
        path = self.path_of(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size
