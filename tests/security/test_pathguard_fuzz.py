"""Property test of `tether apply` against generated hostile trees and symlink layouts:
whatever an experiment commit holds, nothing ever lands outside a temporary work tree or
inside its `.git`, and nothing the work tree held is written through a link."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from security.crafted import write_tree
from tether.errors import TetherError
from tether.experiments.manage import apply_experiment
from tether.gitstore.experiments import ExperimentRef
from tether.gitstore.git import Git

BENIGN = ["a", "b", "pre", "inner", "c d", "HEAD", "inner-dir"]
HOSTILE = ["..", ".", ".git", ".GIT", "git~1", ".git.", ".git ", "Git~1", ".g\u200cit",
           ".git::$INDEX_ALLOCATION", "x\\.."]
COMPONENTS = BENIGN * 12 + HOSTILE  # mostly benign, so that many trees get past the guard
ABSOLUTE = "<absolute path of the outside folder>"
TARGETS = ["a", "b/c", "..", "../..", "../outside", ABSOLUTE, "a/../..", ".git", ".git/hooks",
           "pre", "inner", "./a", "b/../../..", "GIT~1/hooks", "inner-dir"]

paths = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map(tuple)
entry = st.one_of(st.binary(min_size=1, max_size=8),
                  st.sampled_from(TARGETS).map(lambda t: ("link", t)))
trees = st.dictionaries(paths, entry, min_size=1, max_size=6)
# The work tree may already hold links (made by hand, or by an earlier apply).
existing = st.dictionaries(st.sampled_from(["pre", "inner", "a"]),
                           st.sampled_from(["../outside", "inner-dir", ABSOLUTE, ".git"]),
                           max_size=2)


def listing(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            if full.is_symlink():
                found[str(full.relative_to(root))] = os.readlink(full)
            elif full.is_file():
                found[str(full.relative_to(root))] = full.read_bytes()
    return found


def nest(flat: dict[tuple[str, ...], Any], outside: str) -> dict[str, Any] | None:
    """{('a','b'): x} -> {'a': {'b': x}}; None when a name is both a file and a folder."""
    tree: dict[str, Any] = {}
    for parts, node in flat.items():
        here = tree
        for part in parts[:-1]:
            here = here.setdefault(part, {})
            if not isinstance(here, dict):
                return None
        if parts[-1] in here:
            return None
        if isinstance(node, tuple) and node[1] == ABSOLUTE:
            node = ("link", outside)
        here[parts[-1]] = node
    return tree


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(flat=trees, links=existing)
def test_apply_never_writes_outside_the_work_tree(flat: dict[tuple[str, ...], Any],
                                                   links: dict[str, str]) -> None:
    sandbox = Path(tempfile.mkdtemp(prefix="apply-fuzz-"))
    try:
        work, outside = sandbox / "work", sandbox / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_bytes(b"keep")
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        (work / "README.md").write_text("base\n")
        (work / "inner-dir").mkdir()
        (work / "inner-dir" / "x").write_text("x\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "base")
        tree = nest(flat, str(outside))
        if tree is None:
            return
        head = git(work, "rev-parse", "HEAD")
        commit = git(work, "commit-tree", write_tree(work, {"README.md": b"base\n", **tree}),
                     "-p", head, "-m", "hostile")
        for name, target in links.items():
            os.symlink(str(outside) if target == ABSOLUTE else target, work / name)
        before_outside = listing(outside)
        before_git = {k: v for k, v in listing(work / ".git").items() if k != "index"}
        exp = ExperimentRef(ref=f"refs/tether/exps/{head}/fuzz", baseline=head, name="fuzz",
                            commit=commit)
        # Refused (exit 11) or refused by git (exit 6): both fine, if nothing escaped.
        with contextlib.suppress(TetherError):
            apply_experiment(Git(work), exp, force=True)
        assert listing(outside) == before_outside
        assert sorted(p.name for p in sandbox.iterdir()) == ["outside", "work"]
        after_git = {k: v for k, v in listing(work / ".git").items() if k != "index"}
        assert after_git == before_git
        for rel in listing(work):
            if rel.startswith(".git/") or rel == ".git" or rel.split("/")[0] in links:
                continue
            folded = rel.lower().replace("\u200c", "")
            assert ".git" not in folded and "git~1" not in folded, rel
            assert ".." not in rel.split("/"), rel
            full = work / rel
            if full.is_symlink():  # links the experiment brought must stay inside
                real = os.path.realpath(full)
                top = str(work.resolve())
                inside = real == top or real.startswith(top + os.sep)
                assert inside, (rel, os.readlink(full))
                assert not real.startswith(str((work / ".git").resolve())), rel
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
