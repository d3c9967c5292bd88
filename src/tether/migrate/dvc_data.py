"""DVC's `.dvc` pointers → tether's tracked data (`PATH.tether`).

A `.dvc` file names its data by MD5 (`outs: [{md5, size, path}]`; a folder's md5 ends
in `.dir` and names a JSON list of `{md5, relpath}`). When the data is in the work tree
with those hashes, or in the local DVC cache (`.dvc/cache/files/md5/xx/rest` for DVC 3,
`.dvc/cache/xx/rest` for DVC 2), it is put in place and tracked with `tether add`'s own
`add_data`. Otherwise the pointer is listed with the `dvc pull` that would fetch it.
The `.dvc` files themselves are left alone.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import posixpath
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tether.errors import UsageError
from tether.pathguard import WorkTreeGuard, check_relpath
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.cache.objects import ObjectStore
    from tether.cache.tracked import DataPointer
    from tether.gitstore.git import Git

DVC_SUFFIX = ".dvc"
_CHUNK = 1 << 20


@struct(frozen=True)
class DvcOutput:
    """One output of a `.dvc` file: the data's path (from the root) and its MD5."""

    pointer: str
    path: str
    md5: str

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


@struct(frozen=True)
class DvcImport:
    """A `.dvc` file written by `dvc import-url`: its data comes from `url`."""

    pointer: str
    name: str  # the data source's name in tether.yaml
    url: str
    path: str


@struct
class DataReport:
    """What became of each `.dvc` output."""

    tracked: list[DataPointer]
    restored: list[str]      # put in place from the DVC cache before tracking
    missing: list[DvcOutput]  # neither in the work tree nor in the DVC cache
    problems: list[str]       # modified in the work tree, unreadable pointers...
    imports: list[DvcImport] = field(default_factory=list)  # became `data:` sources


def dvc_imports(git: Git) -> list[DvcImport]:
    """The `.dvc` files of `dvc import-url URL PATH` (a dependency that is a URL or an
    absolute path, one output): each becomes a data source declared in tether.yaml."""
    import re

    from tether.urls import url_secrets

    found = []
    for pointer in dvc_pointers(git):
        try:
            data = yaml.safe_load((git.root / pointer).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        deps = data.get("deps") if isinstance(data, dict) else None
        outs = data.get("outs") if isinstance(data, dict) else None
        if not (isinstance(deps, list) and len(deps) == 1 and isinstance(deps[0], dict)
                and isinstance(outs, list) and len(outs) == 1 and isinstance(outs[0], dict)):
            continue
        url, name = str(deps[0].get("path") or ""), str(outs[0].get("path") or "")
        if not name or not ("://" in url or url.startswith("/")) or url_secrets(url):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(pointer), name))
        check_relpath(path, where=f"DVC pointer {pointer!r}")
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", posixpath.basename(path)).lstrip(".-") or "data"
        found.append(DvcImport(pointer=pointer, name=label, url=url, path=path))
    return found


def data_section(imports: list[DvcImport]) -> str:
    """The `data:` block of tether.yaml declaring the imported sources."""
    if not imports:
        return ""
    body = {"data": {item.name: {"source": item.url, "path": item.path} for item in imports}}
    return ("\n# From `dvc import-url` (.dvc files): fetched and pinned in tether.lock by the\n"
            "# first `tether run` or `tether data fetch`; `tether data update` = `dvc update`.\n"
            + yaml.safe_dump(body, sort_keys=False))


def dvc_pointers(git: Git) -> list[str]:
    """The `.dvc` files of the work tree (committed or not, never git-ignored ones)."""
    out = git.run("ls-files", "-z", "-c", "-o", "--exclude-standard", "--",
                  f":(glob)**/*{DVC_SUFFIX}").stdout.decode(errors="surrogateescape")
    return sorted({p for p in out.split("\0") if p and not p.startswith(".dvc/")})


def read_pointer(root: Path, pointer: str, problems: list[str]) -> list[DvcOutput]:
    """The outputs a `.dvc` file names; problems (unreadable, no md5) are appended."""
    try:
        data = yaml.safe_load((root / pointer).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{pointer}: cannot read it ({exc.__class__.__name__})")
        return []
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list):
        problems.append(f"{pointer}: no `outs` list")
        return []
    folder = posixpath.dirname(pointer)
    found = []
    for out in outs:
        md5 = str(out.get("md5") or "") if isinstance(out, dict) else ""
        name = str(out.get("path") or "") if isinstance(out, dict) else ""
        if not md5 or not name:
            problems.append(f"{pointer}: an output without `md5` or `path` (run `dvc add` "
                            "or `dvc commit` first)")
            continue
        path = posixpath.normpath(posixpath.join(folder, name))
        check_relpath(path, where=f"DVC pointer {pointer!r}")
        found.append(DvcOutput(pointer=pointer, path=path, md5=md5))
    return found


def dvc_cache_dirs(root: Path) -> list[Path]:
    """Where DVC keeps objects: `cache.dir` from `.dvc/config(.local)`, else `.dvc/cache`."""
    base = root / ".dvc" / "cache"
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / ".dvc" / name)
        except configparser.Error:
            continue
        configured = parser.get("cache", "dir", fallback=None)
        if configured:
            base = (root / ".dvc" / configured).resolve()
            break
    return [base / "files" / "md5", base]


def _object(caches: list[Path], md5: str) -> Path | None:
    for cache in caches:
        candidate = cache / md5[:2] / md5[2:]
        if candidate.is_file():
            return candidate
    return None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _listing(caches: list[Path], md5: str) -> list[tuple[str, str]] | None:
    """A folder's (relpath, md5) entries from its `.dir` object; None if not cached."""
    found = _object(caches, md5)
    if found is None:
        return None
    entries: Any = json.loads(found.read_text())
    return [(str(e["relpath"]), str(e["md5"])) for e in entries]


def _matches(full: Path, out: DvcOutput, caches: list[Path]) -> bool | None:
    """Whether the work tree holds exactly `out`'s data; None if that cannot be told."""
    if not out.is_dir:
        return full.is_file() and _md5(full) == out.md5
    listing = _listing(caches, out.md5)
    if listing is None or not full.is_dir():
        return None if full.is_dir() else False
    present = {p.relative_to(full).as_posix() for p in full.rglob("*") if p.is_file()}
    return present == {rel for rel, _ in listing} and all(
        _md5(full / rel) == md5 for rel, md5 in listing)


def _restore(guard: WorkTreeGuard, out: DvcOutput, caches: list[Path]) -> bool:
    """Copy `out` from the DVC cache into the work tree, checking every MD5; False if an
    object is missing or corrupt (nothing is left half-written then)."""
    if out.is_dir:
        listing = _listing(caches, out.md5)
        if listing is None:
            return False
        files = [(f"{out.path}/{rel}", md5) for rel, md5 in listing]
    else:
        files = [(out.path, out.md5)]
    sources = [_object(caches, md5) for _, md5 in files]
    if any(source is None or _md5(source) != md5
           for source, (_, md5) in zip(sources, files, strict=True)):
        return False
    for source, (rel, _) in zip(sources, files, strict=True):
        target = guard.target(rel, where=f"DVC pointer {out.pointer!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        assert source is not None
        shutil.copyfile(source, target)
    return True


def convert_pointers(git: Git, store: ObjectStore) -> DataReport:
    """Track the data of every `.dvc` file with tether (see the module docstring)."""
    from tether.cache.tracked import add_data

    report = DataReport(tracked=[], restored=[], missing=[], problems=[])
    caches = dvc_cache_dirs(git.root)
    guard = WorkTreeGuard(git.root)
    ready: list[str] = []
    report.imports = dvc_imports(git)
    imported = {item.pointer for item in report.imports}
    for pointer in dvc_pointers(git):
        if pointer in imported:
            continue  # declared as a data source instead
        for out in read_pointer(git.root, pointer, report.problems):
            full = guard.target(out.path, where=f"DVC pointer {pointer!r}")
            matches = _matches(full, out, caches) if full.exists() else False
            if matches:
                ready.append(out.path)
            elif full.exists():
                report.problems.append(
                    f"{out.path}: differs from {pointer} (or its folder listing is not in "
                    "the DVC cache); run `dvc checkout` or `dvc commit`, then convert again, "
                    f"or track it as it is: `tether add {out.path}`")
            elif _restore(guard, out, caches):
                report.restored.append(out.path)
                ready.append(out.path)
            else:
                report.missing.append(out)
    for path in ready:
        try:
            report.tracked += add_data(git, [path], store)
        except UsageError as exc:  # e.g. git tracks it already: the others still convert
            report.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
    return report
