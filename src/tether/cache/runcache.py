"""The run-cache: stage fingerprint -> the outputs and metrics of a successful run.

Entries are small JSON files, `.tether/cache/runs/<fingerprint>.json`, written
atomically and pushed and pulled with the artifacts they reference. An entry
holds at least `outs` ({path: key}), `metrics`, `experiment` ({ref, name}) and
`run_id`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tether.atomic import write_text
from tether.layout import run_cache_dir

FINGERPRINT = re.compile(r"^[0-9a-f]{8,128}$")


def valid_fingerprint(fingerprint: str) -> bool:
    return bool(FINGERPRINT.fullmatch(fingerprint))


class RunCache:
    """Run-cache entries of the project at `root`."""

    def __init__(self, root: Path) -> None:
        self.dir = run_cache_dir(Path(root))

    def path_of(self, fingerprint: str) -> Path:
        if not valid_fingerprint(fingerprint):
            raise ValueError(f"not a stage fingerprint: {fingerprint!r}")
        return self.dir / f"{fingerprint}.json"

    def put(self, fingerprint: str, entry: dict[str, Any]) -> None:
        """Remember `entry` for `fingerprint` (replacing an older one)."""
        body = {"fingerprint": fingerprint, **entry}
        write_text(self.path_of(fingerprint), json.dumps(body, sort_keys=True, default=str),
                   fsync=False)

    def put_raw(self, fingerprint: str, data: bytes) -> None:
        """Store an entry received from a remote, if it is a JSON object."""
        entry = json.loads(data)
        if not isinstance(entry, dict):
            raise ValueError("a run-cache entry must be a JSON object")
        self.put(fingerprint, entry)

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        """The entry for `fingerprint`, or None (also for an unreadable one)."""
        if not valid_fingerprint(fingerprint):
            return None
        try:
            data = json.loads(self.path_of(fingerprint).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def has(self, fingerprint: str) -> bool:
        return valid_fingerprint(fingerprint) and self.path_of(fingerprint).is_file()

    def fingerprints(self) -> Iterator[str]:
        if self.dir.is_dir():
            for path in self.dir.glob("*.json"):
                if valid_fingerprint(path.stem):
                    yield path.stem

    def remove(self, fingerprint: str) -> None:
        self.path_of(fingerprint).unlink(missing_ok=True)


def entry_keys(entry: dict[str, Any]) -> set[str]:
    """The object keys a run-cache entry's outputs refer to."""
    outs = entry.get("outs") or {}
    return {key for key in outs.values() if isinstance(key, str)}
