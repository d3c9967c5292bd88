"""Following a git remote (`tether worker --follow`): pushed commits become queue entries.

A pass lists the remote's branches (one `git ls-remote`) and compares their tips with
the tips this clone already considered (`refs/tether/follow/<remote>/<branch>`), so a
pass that finds nothing new costs one network round trip. For each new tip of a
matching branch it fetches the commits, reads their messages (`[skip tether]` opts
out, a `Tether-Stages: a,b` trailer chooses the stages), and skips those that already
have an experiment on the remote.

Worker tags: before claiming, a follower reads each commit's spec from its objects
(`queue/commitspec.py`, no checkout) and computes the tags its stages `require` (those
the trailer selects and their upstream), as `run --queue` does. A commit needing a tag
the follower lacks is left unclaimed for a follower that has it, reported once and not
marked seen (a follower restarted with more tags takes it); the entries it queues carry
the requirements in `requires`. A commit whose spec cannot be read is claimed as any
other: its run fails, and records why, wherever it runs.

Exactly once across followers: a follower claims a commit by pushing
`refs/tether/claims/<commit>` create-only (`--force-with-lease=<ref>:`, an empty
expected value: the push fails if the ref exists). Each follower pushes its own claim
commit (a child of the claimed commit naming the follower), so two claims are never
the same object and only one create can win; the losers skip the commit. Followers
need share nothing but the remote.

The winner queues an entry whose snapshot *and baseline* are the pushed commit: the
experiment is recorded as `refs/tether/exps/<commit>/<name>` (the name from the branch:
`exp/lr-small` gives `lr-small`), just as a CI run of that commit records against it,
so `tether gate` walks the main branch's history (which never contains this commit
unless it was merged) to find the main build. `publish` pushes finished entries'
experiment refs back to the remote, then their outputs to the artifact remote.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import TetherError, TransferRejected
from tether.gitstore.git import Git
from tether.gitstore.names import generate_name, is_valid_name
from tether.ids import new_id, new_run_id
from tether.layout import CLAIMS_REFS, EXPS_REFS, FOLLOW_REFS, QUEUE_REFS
from tether.queue.base import DEFAULT_QUEUE, FINAL, Entry, QueueBackend, can_run
from tether.structs import field, struct

if TYPE_CHECKING:
    from tether.cache.remote import TransferResult

DEFAULT_BRANCHES = ("exp/*",)
SKIP_MARKER = "[skip tether]"
STAGES_TRAILER = "Tether-Stages"
# Queue entries made by a follower have snapshot refs under this prefix.
FOLLOW_SNAPSHOTS = f"{QUEUE_REFS}follow-"


def remote_branches(git: Git, remote: str, prefix: str = "") -> dict[str, str]:
    """Branch name -> tip of the remote's branches (those starting with `prefix`), in one
    `git ls-remote`; TransferRejected with git's words when the remote cannot be listed."""
    pattern = [f"refs/heads/{prefix}*"] if prefix else []
    proc = git.run("ls-remote", "--heads", remote, *pattern, check=False)
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TransferRejected(
            f"cannot list the branches of git remote {remote!r}: "
            f"{said[-1] if said else proc.returncode}",
            hint="check the remote's name or URL and your access (git ls-remote works?)")
    return {ref.removeprefix("refs/heads/"): commit for commit, _, ref in
            (line.partition("\t") for line in proc.stdout.decode(errors="replace").splitlines())}


@struct(frozen=True)
class PushedCommit:
    """The tip of a followed branch."""

    branch: str  # without refs/heads/
    commit: str


@struct
class FollowPass:
    """What one pass found and did."""

    branches: int = 0  # matching branches on the remote
    entries: list[Entry] = field(default_factory=list)  # queued by this follower
    skipped: list[tuple[PushedCommit, str]] = field(default_factory=list)  # and why
    # Left unclaimed for a follower with the tags its stages require (reported once).
    left: list[tuple[PushedCommit, tuple[str, ...]]] = field(default_factory=list)
    # Claimed although its spec could not be read (its run fails as the spec says).
    unreadable: list[tuple[PushedCommit, str]] = field(default_factory=list)


@struct(frozen=True)
class Published:
    """A finished followed entry, pushed back."""

    entry: Entry
    status: str  # what git said of its ref: new, up-to-date, diverged, rejected
    note: str = ""  # e.g. why its outputs did not go to the artifact remote


def remote_slug(remote: str) -> str:
    """A ref component for a remote name or URL."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", remote) and not remote.endswith(
            (".lock", ".")):
        return remote
    return "url-" + hashlib.sha1(remote.encode()).hexdigest()[:16]


def parse_stages(message: str) -> list[str] | None:
    """The stages a `Tether-Stages: a, b` trailer names (None: no trailer)."""
    found = None
    for line in message.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == STAGES_TRAILER.lower():
            found = [s.strip() for s in re.split(r"[,\s]+", value) if s.strip()]
    return found


def skips(message: str) -> bool:
    return SKIP_MARKER in message.lower()


def experiment_name(branch: str, taken: set[str]) -> str:
    """The experiment name for a followed branch: its last component, if it is a valid
    name not yet taken; otherwise a fresh one."""
    tail = branch.rsplit("/", 1)[-1]
    return tail if is_valid_name(tail) and tail not in taken else generate_name(taken)


class Follower:
    """Follows the branches matching `patterns` on git remote `remote` from `root`, for a
    worker with `tags`: it claims only commits whose stages require no other tags."""

    def __init__(self, root: Path, remote: str, patterns: Sequence[str] = DEFAULT_BRANCHES,
                 *, queue: str = DEFAULT_QUEUE, clock: Callable[[], float] = time.time,
                 tags: Sequence[str] = ()) -> None:
        self.root = root
        self.git = Git(root)
        self.remote = remote
        self.patterns = list(patterns) or list(DEFAULT_BRANCHES)
        self.queue = queue
        self.clock = clock
        self.seen_prefix = f"{FOLLOW_REFS}{remote_slug(remote)}/"
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.tags = tuple(tags)
        # Commits left for better-equipped followers: not marked seen (a restart with
        # other tags looks again), not looked at again by this follower.
        self.left: set[str] = set()

    # -- one pass ---------------------------------------------------------

    def tips(self) -> list[PushedCommit]:
        """The tips of the remote's matching branches (one `git ls-remote`)."""
        return [PushedCommit(branch, commit)
                for branch, commit in remote_branches(self.git, self.remote).items()
                if any(fnmatchcase(branch, pattern) for pattern in self.patterns)]

    def _seen(self) -> dict[str, str]:
        return {ref.removeprefix(self.seen_prefix): sha for ref, sha in
                (line.split(" ", 1) for line in self.git.for_each_ref(self.seen_prefix))}

    def _mark_seen(self, pushed: Sequence[PushedCommit]) -> None:
        if pushed:
            script = "".join(f"update {self.seen_prefix}{p.branch} {p.commit}\n" for p in pushed)
            self.git.run("update-ref", "--stdin", input=f"start\n{script}commit\n")

    def _remote_state(self, commits: set[str]) -> tuple[set[str], set[str]]:
        """Of `commits`, those with experiments and those claimed on the remote."""
        patterns = [f"{EXPS_REFS}{c}/*" for c in commits] + [f"{CLAIMS_REFS}{c}" for c in commits]
        out = self.git.out("ls-remote", "--refs", self.remote, *patterns)
        recorded, claimed = set(), set()
        for line in out.splitlines():
            ref = line.partition("\t")[2]
            if ref.startswith(EXPS_REFS):
                recorded.add(ref.removeprefix(EXPS_REFS).partition("/")[0])
            elif ref.startswith(CLAIMS_REFS):
                claimed.add(ref.removeprefix(CLAIMS_REFS))
        return recorded & commits, claimed & commits

    def _messages(self, commits: set[str]) -> dict[str, str]:
        out = self.git.out("log", "--no-walk=unsorted", "--format=%H%x00%B%x00", *commits)
        parts = out.split("\x00")
        return {parts[i].strip(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}

    def claim(self, commits: Sequence[str]) -> set[str]:
        """Claim `commits` on the remote (one push); returns those this follower won."""
        if not commits:
            return set()
        empty_tree = self.git.out("mktree", input=b"")  # what a claim commit holds
        specs, leases = [], []
        for commit in commits:
            claim = self.git.out(
                "commit-tree", empty_tree, "-p", commit,
                "-m", f"tether: {commit} claimed by {self.id} at {self.clock():.0f}")
            ref = f"{CLAIMS_REFS}{commit}"
            specs.append(f"{claim}:{ref}")
            leases.append(f"--force-with-lease={ref}:")
        proc = self.git.run("push", "--porcelain", "--no-verify", *leases, self.remote, *specs,
                            check=False)
        won = set()
        for line in proc.stdout.decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0] == "*":
                won.add(parts[1].rpartition(":")[2].removeprefix(CLAIMS_REFS))
        if proc.returncode != 0 and not won and "\t" not in proc.stdout.decode(errors="replace"):
            raise TransferRejected(
                f"claiming commits on {self.remote!r} failed: "
                f"{proc.stderr.decode(errors='replace').strip() or proc.returncode}",
                hint="the follower needs push access to the remote")
        return won

    def follow_once(self, backend: QueueBackend) -> FollowPass:
        """List, fetch, claim and queue what is new on the remote."""
        result = FollowPass()
        tips = self.tips()
        result.branches = len(tips)
        seen = self._seen()
        fresh = [p for p in tips
                 if seen.get(p.branch) != p.commit and p.commit not in self.left]
        if not fresh:
            return result
        # Fetched into a scratch namespace; `seen` moves only once they are handled.
        scratch = f"{FOLLOW_REFS}fetch-{new_id()}/"
        self.git.run("fetch", "--no-tags", "--no-write-fetch-head", self.remote,
                     *(f"+refs/heads/{p.branch}:{scratch}{p.branch}" for p in fresh))
        try:
            commits = {p.commit for p in fresh}
            messages = self._messages(commits)
            recorded, claimed = self._remote_state(commits)
            wanted: dict[str, PushedCommit] = {}
            for pushed in fresh:
                if pushed.commit in wanted:
                    continue  # the same commit on two branches runs once
                reason = ("[skip tether] in its message" if skips(messages.get(pushed.commit, ""))
                          else "already has an experiment" if pushed.commit in recorded
                          else "claimed by another follower" if pushed.commit in claimed
                          else None)
                if reason:
                    result.skipped.append((pushed, reason))
                else:
                    wanted[pushed.commit] = pushed
            requires = self._requirements(wanted, messages, result)
            for commit, pushed in list(wanted.items()):
                if not can_run(requires[commit], self.tags):
                    result.left.append((pushed, requires[commit]))
                    self.left.add(commit)
                    del wanted[commit]
            won = self.claim(list(wanted))
            for commit, pushed in wanted.items():
                if commit not in won:
                    result.skipped.append((pushed, "claimed by another follower"))
            result.entries = self._enqueue(backend, [wanted[c] for c in wanted if c in won],
                                           messages, requires)
            self._mark_seen([p for p in fresh if p.commit not in self.left])
        finally:
            refs = self.git.for_each_ref(scratch)
            if refs:
                script = "".join(f"delete {line.split(' ')[0]}\n" for line in refs)
                self.git.run("update-ref", "--stdin", input=script, check=False)
        return result

    def _requirements(self, wanted: dict[str, PushedCommit], messages: dict[str, str],
                      result: FollowPass) -> dict[str, tuple[str, ...]]:
        """The worker tags the stages each commit runs require (those its `Tether-Stages`
        trailer selects, and what they depend on), as `run --queue` computes them. A
        commit whose spec cannot be read needs none: it is run, and fails as the spec
        says, wherever it runs (noted in `result.unreadable`)."""
        from tether.queue.commitspec import pipelines_at

        requires: dict[str, tuple[str, ...]] = {}
        pipelines = pipelines_at(self.git, list(wanted)) if wanted else {}
        for commit, pushed in wanted.items():
            pipeline = pipelines[commit]
            try:
                if isinstance(pipeline, TetherError):
                    raise pipeline
                order = pipeline.order(parse_stages(messages.get(commit, "")) or None)
                requires[commit] = pipeline.requirements(order)
            except TetherError as exc:
                result.unreadable.append((pushed, str(exc)))
                requires[commit] = ()
        return requires

    def _enqueue(self, backend: QueueBackend, pushed: Sequence[PushedCommit],
                 messages: dict[str, str], requires: dict[str, tuple[str, ...]]) -> list[Entry]:
        now = self.clock()
        entries = []
        for item in pushed:
            taken = backend.reserved_names(item.commit)
            entry_id = new_id()
            entries.append(Entry(
                id=entry_id, name=experiment_name(item.branch, taken), baseline=item.commit,
                snapshot=item.commit, snapshot_ref=f"{FOLLOW_SNAPSHOTS}{entry_id}",
                run_id=new_run_id(now), queue=self.queue,
                targets=tuple(parse_stages(messages.get(item.commit, "")) or ()),
                message=f"followed {item.branch} on {self.remote}", created_at=now,
                requires=requires.get(item.commit, ()),
            ))
        for entry in entries:
            self.git.update_ref(entry.snapshot_ref, entry.snapshot)
        if entries:
            backend.enqueue(entries, now)
        return entries

    # -- results ----------------------------------------------------------

    def publish(self, entries: Sequence[Entry]) -> list[Published]:
        """Push the experiment refs of finished entries (one git push), then the outputs
        of the new ones to the artifact remote."""
        done = [e for e in entries if e.state in FINAL and e.result_ref]
        if not done:
            return []
        proc = self.git.run("push", "--porcelain", self.remote,
                            *(f"{e.result_ref}:{e.result_ref}" for e in done), check=False)
        status: dict[str, str] = {}
        for line in proc.stdout.decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and len(parts[0]) == 1:
                flag = parts[0]
                status[parts[1].rpartition(":")[2]] = (
                    "new" if flag == "*" else "up-to-date" if flag == "=" else
                    "diverged" if flag == "!" and "[rejected]" in parts[2] else
                    "rejected" if flag == "!" else "updated")
        if proc.returncode != 0 and not status:
            raise TransferRejected(
                f"pushing results to {self.remote!r} failed: "
                f"{proc.stderr.decode(errors='replace').strip() or proc.returncode}",
                hint="the follower needs push access to the remote")
        from tether.logs import bind
        from tether.share.sharelog import PUSH, log_transfer
        from tether.share.transfer import RefResult

        published = []
        for entry in done:
            ref = str(entry.result_ref)
            state = status.get(ref, "rejected")
            note, moved = self._push_outputs(ref) if state == "new" else ("", None)
            with bind(run_id=entry.run_id, exp=entry.name, entry=entry.id, queue=entry.queue):
                log_transfer(PUSH, self.remote, [RefResult(ref, state)], artifacts=moved,
                             ref=ref)
            published.append(Published(entry, state, note))
        return published

    def _push_outputs(self, ref: str) -> tuple[str, TransferResult | None]:
        from tether.config import list_remotes
        from tether.share.transfer import push_artifacts

        try:
            if not any(remote.default for remote in list_remotes(self.root)):
                return "", None  # no artifact remote: outputs stay in this clone's cache
            return "", push_artifacts(self.root, [ref])
        except TetherError as exc:
            return f"its outputs were not pushed to the artifact remote: {exc}", None

    def note_verdict(self, commit: str, text: str) -> bool:
        """Add `text` (the gate's verdict) to the commit's claim on the remote, as a child
        of the claim commit: `git log refs/tether/claims/<commit>` shows it. False if the
        remote refused (the result itself is already pushed)."""
        proc = self.git.run("ls-remote", self.remote, f"{CLAIMS_REFS}{commit}", check=False)
        claim = proc.stdout.decode().partition("\t")[0]
        if proc.returncode != 0 or not claim:
            return False
        fetched = self.git.run("fetch", "--no-tags", "--no-write-fetch-head", self.remote,
                               f"{CLAIMS_REFS}{commit}", check=False)
        if fetched.returncode != 0:
            return False
        tree = self.git.out("mktree", input=b"")
        note = self.git.out("commit-tree", tree, "-p", claim, "-m", text)
        pushed = self.git.run("push", "--no-verify", self.remote,
                              f"{note}:{CLAIMS_REFS}{commit}", check=False)
        return pushed.returncode == 0

    def followed_entries(self, backend: QueueBackend) -> list[Entry]:
        """Every queue entry a follower made here, oldest first."""
        return [e for e in backend.entries() if e.snapshot_ref.startswith(FOLLOW_SNAPSHOTS)]
