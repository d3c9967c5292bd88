"""Build hostile git objects the way an attacker would: raw trees git's porcelain refuses.

`git mktree` and `git commit-tree` would reject or normalise names like `..` or
`.git`; `hash-object --literally` writes whatever bytes it is given, as a crafted
push to a shared remote could.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# A nested tree as {name: content}: bytes is a file, ("link", target) a symlink, a dict a tree.
Node = bytes | tuple[str, str] | dict[str, Any]


def _git(root: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, check=True)
    return proc.stdout.decode().strip()


def write_tree(root: Path, tree: dict[str, Node]) -> str:
    """Write `tree` (names taken literally, any bytes) and return its sha."""
    entries = []
    for name, node in tree.items():
        if isinstance(node, bytes):
            mode, sha = "100644", _git(root, "hash-object", "-w", "--stdin", data=node)
        elif isinstance(node, tuple):
            mode = "120000"
            sha = _git(root, "hash-object", "-w", "--stdin", data=node[1].encode())
        else:
            mode, sha = "40000", write_tree(root, node)
        entries.append((name.encode(errors="surrogateescape"), mode, sha))
    # git sorts trees by name, with trees compared as if they ended in '/'.
    entries.sort(key=lambda e: e[0] + (b"/" if e[1] == "40000" else b""))
    raw = b"".join(f"{mode} ".encode() + name + b"\0" + bytes.fromhex(sha)
                   for name, mode, sha in entries)
    return _git(root, "hash-object", "-w", "-t", "tree", "--literally", "--stdin", data=raw)


def record(name: str, baseline: str, **extra: Any) -> bytes:
    body = {"schema": 1, "id": f"crafted-{name}", "name": name, "baseline": baseline,
            "status": "success", "created_at": 1_700_000_000.0, "stages": [],
            "params": {}, "metrics": {}, **extra}
    return json.dumps(body).encode()


def plant_experiment(root: Path, name: str, tree: dict[str, Node],
                     record_extra: dict[str, Any] | None = None) -> str:
    """An experiment ref under HEAD whose commit holds `tree` plus a record; its ref."""
    head = _git(root, "rev-parse", "HEAD")
    full = dict(tree)
    state = full.setdefault(".tether", {})
    assert isinstance(state, dict)
    state["record.json"] = record(name, head, **(record_extra or {}))
    sha = write_tree(root, full)
    commit = _git(root, "commit-tree", sha, "-p", head, "-m", f"tether: {name}")
    ref = f"refs/tether/exps/{head}/{name}"
    _git(root, "update-ref", ref, commit)
    return ref
