"""Choosing the experiments to push or pull: by name, all, or a baseline's; and
telling a git remote from an experiment's name (`tether push|pull [REMOTE] [EXP...]`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tether.errors import ExperimentError, UsageError
from tether.gitstore.experiments import ExperimentRef, list_experiments
from tether.gitstore.git import Git

if TYPE_CHECKING:
    from tether.share.transfer import RemoteExperiment


def resolve_local(git: Git, text: str) -> ExperimentRef:
    try:
        from tether.experiments.resolve import resolve_experiment
    except ImportError:  # pragma: no cover - resolve.py ships with explore
        every = [e for e in list_experiments(git) if text in (e.ref, e.name)]
        if len(every) != 1:
            raise ExperimentError(f"no single experiment named {text!r}") from None
        return every[0]
    return resolve_experiment(git, text)


def _looks_like_remote(git: Git, text: str) -> bool:
    """Whether git would take `text` as a remote: a configured one, a URL or a path."""
    if text in git.out("remote").split():
        return True
    if "://" in text or text.endswith(".git") or (git.root / text).exists():
        return True
    host, colon, _ = text.partition(":")  # scp-like user@host:path
    return bool(colon) and "/" not in host


def split_remote(git: Git, first: str, names: Sequence[str], *,
                 local: bool) -> tuple[str, list[str]]:
    """`tether push|pull [REMOTE] [EXP...]`: the git remote and the experiment names.

    The first word is the remote unless git could not take it as one; then it is the
    first experiment and the remote is origin. For push it must name a local experiment.
    """
    if _looks_like_remote(git, first):
        return first, list(names)
    if local:
        try:
            resolve_local(git, first)
        except ExperimentError:
            raise UsageError(
                f"{first!r} is neither a git remote nor an experiment",
                hint="`git remote -v` lists the remotes, `tether show -A` the experiments",
            ) from None
    return "origin", [first, *names]


def _baseline_sha(git: Git, rev: str) -> str:
    sha = git.resolve(rev)
    if sha is None:
        raise UsageError(f"--baseline {rev!r} names no commit")
    return sha


def select_local(git: Git, names: Sequence[str], *, every: bool = False,
                 baseline: str | None = None) -> list[ExperimentRef]:
    """The experiments to push: named ones, all, or those of a baseline (default HEAD)."""
    if names and (every or baseline):
        raise UsageError("give experiment names, --all or --baseline, not several")
    if names:
        return list({e.ref: e for e in (resolve_local(git, n) for n in names)}.values())
    if every:
        return list_experiments(git)
    return list_experiments(git, _baseline_sha(git, baseline or "HEAD"))


def select_remote(git: Git, found: list[RemoteExperiment], names: Sequence[str], every: bool,
                   baseline: str | None) -> list[RemoteExperiment]:
    if names and (every or baseline):
        raise UsageError("give experiment names, --all or --baseline, not several")
    if every:
        return found
    if names:
        chosen = []
        for text in names:
            match = [e for e in found if text in (e.ref, e.name, f"{e.baseline}/{e.name}")
                     or (text.count("/") == 1 and e.name == text.split("/")[1]
                         and e.baseline.startswith(text.split("/")[0]))]
            if not match:
                raise ExperimentError(f"the git remote has no experiment {text!r}",
                                      hint="`tether ls-remote` lists them")
            chosen.extend(match)
        return list({e.ref: e for e in chosen}.values())
    sha = git.resolve(baseline or "HEAD") or (baseline or "")
    return [e for e in found if e.baseline == sha]
