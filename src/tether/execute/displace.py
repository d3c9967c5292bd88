"""Move a stage's earlier outputs out of the way before it runs.

A stage's declared outputs, metric and plot files left by an earlier run must not
pass for this run's results: a stage that fails, or succeeds without writing one
of them, would otherwise leave the old file in place to be read and recorded.
They are moved to the run's folder (`.tether/runs/<run-id>/displaced/<stage>/`)
just before the stage starts. If the stage never starts (interrupted first) they
are put back; if it succeeds they are dropped; if it fails they are kept there,
so nothing the user had is lost (`tether checkout` restores the last successful
outputs from the cache).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def _move(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError:  # another file system (a state root elsewhere): copy, then delete
        shutil.move(str(src), str(dest))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Displaced:
    """The files of one stage, moved from `workspace` to `folder` while it runs."""

    def __init__(self, workspace: Path, paths: Iterable[str], folder: Path) -> None:
        self.workspace = workspace
        self.paths = list(dict.fromkeys(paths))
        self.folder = folder
        self.moved: list[str] = []

    def move(self) -> None:
        """Move every declared path that exists (a path inside a moved one goes with it)."""
        for rel in self.paths:
            src = self.workspace / rel
            if not (src.exists() or src.is_symlink()):
                continue
            dest = self.folder / rel
            if dest.exists() or dest.is_symlink():
                _remove(dest)
            _move(src, dest)
            self.moved.append(rel)

    def put_back(self) -> None:
        """Return everything moved (the stage did not start), replacing what is there now."""
        for rel in reversed(self.moved):
            src = self.folder / rel
            if not (src.exists() or src.is_symlink()):
                continue
            dest = self.workspace / rel
            if dest.exists() or dest.is_symlink():
                _remove(dest)
            _move(src, dest)
        self.moved.clear()
        self.discard()

    def discard(self) -> None:
        """Drop the earlier files (the stage produced its own)."""
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
        self.moved.clear()
