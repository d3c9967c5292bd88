"""The code a run starts from: baseline commit and the uncommitted changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether.gitstore.git import Git
from tether.layout import STATE_DIR
from tether.record.environment import redact_text

DIFF_CAP = 2 * 1024 * 1024


def capture_code(git: Git, workspace: Path, baseline: str) -> dict[str, Any]:
    """Commit, branch, the uncommitted diff (secrets redacted) and untracked files."""
    diff = git.run("diff", "HEAD", "--binary", "--", ".", f":(exclude){STATE_DIR}",
                   cwd=workspace).stdout
    untracked = [
        p for p in git.out("ls-files", "-o", "--exclude-standard", "-z", cwd=workspace).split("\0")
        if p and not p.startswith(STATE_DIR + "/")
    ]
    text = diff.decode(errors="replace")
    truncated = len(diff) > DIFF_CAP
    if truncated:
        text = text[:DIFF_CAP]
    return {
        "commit": baseline,
        "dirty": bool(diff.strip()) or bool(untracked),
        "diff": redact_text(text, os.environ),
        "diff_truncated": truncated,
        "untracked": untracked,
    }
