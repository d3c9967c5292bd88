"""A push SIGKILLed half-way leaves nothing corrupt, and running it again completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, write
from helpers import exp_refs
from share.conftest import tether_ok
from tether.cache.hashing import hash_file_uncached, is_dir_key, manifest_key, parse_manifest
from tether.cache.objects import key_from_path
from tether.project import object_store

FILES = 1500
GEN = f"""\
import os
os.makedirs("shards", exist_ok=True)
for i in range({FILES}):
    open(f"shards/{{i:05d}}.txt", "w").write(f"shard {{i}}\\n")
"""
SPEC = "stages:\n  gen:\n    cmd: python gen.py\n    deps: [gen.py]\n    outs: [shards]\n"


def _remote_objects(base: Path) -> dict[str, Path]:
    found = {}
    for dirpath, _, names in os.walk(base / "objects"):
        for name in names:
            path = Path(dirpath) / name
            key = key_from_path(path.relative_to(base / "objects").as_posix())
            if key:
                found[key] = path
    return found


def test_killed_push_then_rerun_gives_a_complete_verified_remote(
    repo: Path, origin: Path, store_dir: Path
) -> None:
    write(repo / "tether.yaml", SPEC)
    write(repo / "gen.py", GEN)
    write(repo / ".gitignore", "shards/\n")
    tether_ok(repo, "remote", "add", "store", str(store_dir), "--default")
    write(repo / ".tether" / "config.local.yaml", "cache:\n  jobs: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "generator")
    git(repo, "remote", "add", "origin", str(origin))
    tether_ok(repo, "run", "-q", "-n", "many")
    dir_key = object_store(repo).save(repo / "shards", link=False)

    push = subprocess.Popen([sys.executable, "-m", "tether", "push"], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_remote_objects(store_dir)) < 50 and push.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    push.send_signal(signal.SIGKILL)
    push.wait()
    partial = _remote_objects(store_dir)
    assert 0 < len(partial) < FILES + 1, "the push finished before it could be killed"
    assert dir_key not in partial  # the manifest goes last: no half directory is visible
    for key, path in partial.items():
        assert hash_file_uncached(path) == key

    out = tether_ok(repo, "push")
    assert "already there" in out
    complete = _remote_objects(store_dir)
    manifest = parse_manifest(complete[dir_key].read_bytes())
    assert manifest_key(manifest) == dir_key and len(manifest) == FILES
    assert set(complete) == {dir_key} | {k for _, k in manifest}
    for key, path in complete.items():
        if not is_dir_key(key):
            assert hash_file_uncached(path) == key
    assert next(iter(exp_refs(repo))) in git(repo, "ls-remote", "origin", "refs/tether/*")
