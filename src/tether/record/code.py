"""The code a run starts from: baseline commit and the uncommitted changes."""

from __future__ import annotations

from typing import Any

from tether.layout import STATE_DIR

DIFF_CAP = 2 * 1024 * 1024


def describe_code(baseline: str, diff: bytes, untracked_z: str) -> dict[str, Any]:
    """Commit, the uncommitted diff and untracked files (the run redacts the whole record).

    `diff` is `git diff HEAD --binary`, `untracked_z` `git ls-files -o -z` output.
    """
    untracked = [p for p in untracked_z.split("\0") if p and not p.startswith(STATE_DIR + "/")]
    text = diff.decode(errors="replace")
    truncated = len(diff) > DIFF_CAP
    if truncated:
        text = text[:DIFF_CAP]
    return {
        "commit": baseline,
        "dirty": bool(diff.strip()) or bool(untracked),
        "diff": text,
        "diff_truncated": truncated,
        "untracked": untracked,
    }
