"""Property test of the path guard: whatever tree and symlink layout an attacker sends,
nothing ever lands outside a temporary work tree or inside its `.git`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.cache.pathguard import SYMLINK_MODE, WorkTreeGuard, unsafe_reason, write_entries
from tether.errors import UnsafePathError

COMPONENTS = ["a", "b", "..", ".", "", ".git", ".GIT", "git~1", ".git.", ".git ", "Git~1",
              ".g\u200cit", ".git::$INDEX_ALLOCATION", "x\\..", "pre", "inner", "c d"]
ABSOLUTE = "<absolute path of the outside folder>"
TARGETS = ["a", "b/c", "..", "../..", "../outside", ABSOLUTE, "a/../..", ".git", ".git/hooks",
           "pre", "inner", "./a", "b/../../..", "GIT~1/hooks", ""]

paths = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map("/".join)
entry = st.one_of(
    st.tuples(st.just("100644"), st.binary(max_size=8)),
    st.tuples(st.just(SYMLINK_MODE), st.sampled_from(TARGETS).map(str.encode)),
)
trees = st.dictionaries(paths, entry, max_size=6)
# The work tree may already hold links (made by hand, or by an earlier operation).
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, links=existing, rounds=st.integers(min_value=1, max_value=2))
def test_nothing_lands_outside_the_work_tree(tree: dict[str, tuple[str, bytes]],
                                             links: dict[str, str], rounds: int) -> None:
    sandbox = Path(tempfile.mkdtemp(prefix="guard-fuzz-"))
    try:
        work = sandbox / "work"
        (work / ".git" / "hooks").mkdir(parents=True)
        (work / "inner-dir").mkdir()
        (sandbox / "outside").mkdir()
        (sandbox / "outside" / "keep.txt").write_bytes(b"keep")
        outside = str(sandbox / "outside")
        for name, target in links.items():
            os.symlink(outside if target == ABSOLUTE else target, work / name)
        tree = {p: (mode, outside.encode() if data == ABSOLUTE.encode() else data)
                for p, (mode, data) in tree.items()}
        before_outside = listing(sandbox / "outside")
        before_sandbox = sorted(p.name for p in sandbox.iterdir())
        guard = WorkTreeGuard(work, git_dirs=(work / ".git",))
        for _ in range(rounds):  # a second round writes through links the first made
            try:
                write_entries(guard, tree, where="fuzz")
            except UnsafePathError:
                pass
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                pass  # a file where a directory is needed: refused by the OS, nothing escapes
        assert listing(sandbox / "outside") == before_outside
        assert sorted(p.name for p in sandbox.iterdir()) == before_sandbox
        assert list((work / ".git").rglob("*")) == [work / ".git" / "hooks"]
        for rel in listing(work):
            if rel.startswith((".git/", "inner-dir", *links)) or rel == ".git":
                continue
            assert unsafe_reason(rel) is None, rel
            # and, independently of the guard's own rules: no spelling of `.git` got through
            folded = rel.lower().replace("\u200c", "")
            assert ".git" not in folded and "git~1" not in folded, rel
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
