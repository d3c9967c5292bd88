"""Helpers for tests that look inside what tether recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def exp_refs(root: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/tether/"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def record_of(root: Path, ref: str) -> dict[str, Any]:
    text = subprocess.run(
        ["git", "cat-file", "blob", f"{ref}:.tether/record.json"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    data: dict[str, Any] = json.loads(text)
    return data


def only_record(root: Path) -> dict[str, Any]:
    refs = exp_refs(root)
    assert len(refs) == 1, refs
    return record_of(root, next(iter(refs)))


def records(root: Path) -> list[dict[str, Any]]:
    found = [record_of(root, ref) for ref in exp_refs(root)]
    return sorted(found, key=lambda r: r["created_at"])


def tree_files(root: Path, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    return out.splitlines()


def repo_state(root: Path) -> dict[str, str]:
    """Everything recording must leave alone: HEAD, branches, index, status."""
    def g(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout

    return {
        "head": g("rev-parse", "HEAD"),
        "symbolic": g("symbolic-ref", "-q", "HEAD"),
        "branches": g("for-each-ref", "refs/heads", "refs/tags"),
        "index": g("ls-files", "-s"),
        "staged": g("diff", "--cached"),
        "status": g("status", "--porcelain", "--untracked-files=all", "--ignored=no"),
    }
