"""Atomic file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_bytes(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o644) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never half.

    `mode` (less the umask) is the file's from its creation: 0o600 keeps a secret
    unreadable to others at every moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL on a random name is all mkstemp does; importing tempfile costs more.
    tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write names no file: say which one it was
        raise


def write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    write_bytes(path, text.encode(), fsync=fsync)
