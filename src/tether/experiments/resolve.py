"""Turn what a user types (a name, a commit prefix, a ref) into one recorded experiment."""

from __future__ import annotations

import re
from datetime import datetime

from tether.errors import ExperimentError, close_matches
from tether.experiments.explore import read_checked_records
from tether.gitstore.experiments import ExperimentRef, list_experiments
from tether.gitstore.git import Git
from tether.layout import EXPS_REFS
from tether.record.record import InvalidRecord, RunRecord
from tether.record.validate import UNREADABLE, Skipped
from tether.status import SUCCESS
from tether.structs import struct

_SHA_PREFIX = re.compile(r"^[0-9a-f]{4,40}$")


@struct(frozen=True)
class Experiment:
    """An experiment ref together with its record.

    A record that is missing or fails validation is None, and `problem` says why.
    """

    ref: ExperimentRef
    record: RunRecord | None
    problem: str | None = None

    @property
    def created_at(self) -> float:
        return self.record.created_at if self.record else 0.0

    @property
    def status(self) -> str:
        return self.record.status if self.record else UNREADABLE

    @property
    def run_record(self) -> RunRecord:
        """The record of an experiment known to be readable (`readable`, `one_experiment`)."""
        if self.record is None:
            raise InvalidRecord(f"experiment {self.ref.name!r} cannot be read: {self.problem}")
        return self.record


def with_records(git: Git, refs: list[ExperimentRef]) -> list[Experiment]:
    """The records of `refs`, read and validated in one batch (see `Experiment.problem`)."""
    records = read_checked_records(git, [r.commit for r in refs])
    return [Experiment(ref, record, problem)
            for ref, (record, problem) in zip(refs, records, strict=True)]


def readable(experiments: list[Experiment], skipped: list[Skipped] | None) -> list[Experiment]:
    """The experiments whose record is valid; the others are added to `skipped` if given."""
    if skipped is not None:
        skipped += [Skipped(e.ref.ref, e.problem) for e in experiments if e.problem]
    return [e for e in experiments if not e.problem]


def one_experiment(git: Git, ref: ExperimentRef) -> Experiment:
    """The experiment of `ref` with its record; an error naming the problem if it is invalid."""
    exp = with_records(git, [ref])[0]
    if exp.problem:
        raise ExperimentError(
            f"experiment {ref.name!r} cannot be read: {exp.problem}",
            hint=f"it was recorded by a broken or foreign tool; `tether remove {ref.ref}` "
            "removes it",
        )
    return exp


def head_or_none(git: Git) -> str | None:
    """HEAD's commit, or None in a repository without commits."""
    return git.resolve("HEAD")


def resolve_experiment(git: Git, text: str) -> ExperimentRef:
    """The experiment `text` names: a name, a commit prefix, `BASELINE/NAME` or a full ref.

    A name is looked up under HEAD's baseline first, then under every baseline.
    """
    text = text.strip()
    every = list_experiments(git)
    if text.startswith("refs/"):
        exact = [e for e in every if e.ref == text]
        if exact:
            return exact[0]
        raise _unknown(text, every)
    head = head_or_none(git)
    by_name = [e for e in every if e.name == text]
    under_head = [e for e in by_name if e.baseline == head]
    if under_head:
        return under_head[0]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise _ambiguous(git, text, by_name)
    if "/" in text:
        prefix, _, name = text.rpartition("/")
        by_path = [e for e in every if e.name == name and e.baseline.startswith(prefix.lower())]
        if len(by_path) == 1:
            return by_path[0]
        if by_path:
            raise _ambiguous(git, text, by_path)
    if _SHA_PREFIX.match(text.lower()):
        by_commit = [e for e in every if e.commit.startswith(text.lower())]
        if len(by_commit) == 1:
            return by_commit[0]
        if by_commit:
            raise _ambiguous(git, text, by_commit)
    raise _unknown(text, every)


def latest_experiment(
    git: Git, baseline: str, *, successful: bool = False, skipped: list[Skipped] | None = None
) -> Experiment | None:
    """The most recently created experiment under `baseline` (optionally: that succeeded).

    Refs with an invalid name or record are left out, and added to `skipped` if given.
    """
    found = readable(with_records(git, list_experiments(git, baseline, skipped=skipped)),
                     skipped)
    if successful:
        found = [e for e in found if e.status == SUCCESS]
    return max(found, key=lambda e: e.created_at, default=None)


def _ambiguous(git: Git, text: str, candidates: list[ExperimentRef]) -> ExperimentError:
    lines = []
    for exp in sorted(with_records(git, candidates), key=lambda e: e.created_at):
        created = datetime.fromtimestamp(exp.created_at).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {exp.ref.ref}  (created {created}, {exp.status})")
    return ExperimentError(
        f"{text!r} matches {len(candidates)} experiments:\n" + "\n".join(lines),
        hint="name one by its full ref, BASELINE/NAME, or a longer commit prefix",
    )


def _unknown(text: str, every: list[ExperimentRef]) -> ExperimentError:
    names = sorted({e.name for e in every})
    close = close_matches(text.rpartition("/")[2], names, n=3)
    if close:
        hint = "did you mean " + " or ".join(repr(n) for n in close) + "?"
    elif every:
        hint = "`tether show -A` lists every recorded experiment"
    else:
        hint = "no experiment is recorded yet: `tether run` records one"
    foreign = text.startswith("refs/") and not text.startswith(EXPS_REFS)
    where = " (not a tether ref)" if foreign else ""
    return ExperimentError(f"no experiment named {text!r}{where}", hint=hint)
