"""Put a cached object at a workspace path: reflink, hardlink or copy.

The default order is `reflink, copy`: a reflink shares blocks copy-on-write
and a copy is independent, so no edit in the workspace can reach the cache.
`hardlink` is opt-in (`cache.link` in the config): the linked file is made
read-only, but a process running as root can still write through it, which
`restore` would then report as a corrupt object rather than use it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def reflink(src: Path, dst: Path) -> bool:
    """Clone `src` to a new file `dst` sharing its blocks; False where unsupported."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Windows
        return False
    with open(src, "rb") as source:
        try:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return False
        try:
            fcntl.ioctl(fd, _FICLONE, source.fileno())
        except OSError as exc:
            os.close(fd)
            os.unlink(dst)
            if exc.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY,
                             errno.EBADF, errno.EPERM):
                return False
            raise
        os.close(fd)
    return True


def make_read_only(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def place(src: Path, dst: Path, order: Sequence[str]) -> str:
    """Create `dst` (which must not exist) from `src` with the first mode that works."""
    import shutil  # here: only a copy needs it

    for mode in order:
        if mode == "reflink" and reflink(src, dst):
            return mode
        if mode == "hardlink":
            try:
                os.link(src, dst)
            except OSError:
                continue
            make_read_only(dst)
            return mode
        if mode == "copy":
            shutil.copyfile(src, dst)
            return mode
    shutil.copyfile(src, dst)
    return "copy"
