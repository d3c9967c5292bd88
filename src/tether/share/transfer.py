"""Share experiments: refs through git, outputs and run-cache entries through artifact remotes.

`push` sends experiment refs in one `git push` (never forcing unless asked, so
a diverged ref — same name, another commit — is reported, not overwritten),
then the objects their records reference. `pull` is the reverse, and `ls_remote`
lists a git remote's experiments without fetching (`checkout` is in
`tether.share.checkout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether.cache.remote import Progress, TransferResult
from tether.errors import GitStateError, TransferRejected
from tether.experiments.artifacts import record_outputs, run_cache_entries, tracked_data
from tether.experiments.explore import read_records
from tether.gitstore.experiments import parse_exp_ref
from tether.gitstore.git import WITH_HOOKS, Git
from tether.layout import EXPS_REFS
from tether.record.record import RunRecord
from tether.share.choose import select_local, select_remote, split_remote
from tether.share.sharelog import PULL, PUSH, log_transfer
from tether.structs import field, struct


@struct(frozen=True)
class RefResult:
    """What happened to one experiment ref: new, updated, up-to-date, diverged, rejected."""

    ref: str
    status: str
    detail: str = ""


@struct
class ShareReport:
    refs: list[RefResult] = field(default_factory=list)
    artifacts: TransferResult | None = None
    remote: str | None = None  # the artifact remote used
    git_message: str = ""  # what the git remote said (hook output, reasons), for rejections
    # object key -> what it is ("model.bin of lr-001", "data/raw.csv (tracked data)"),
    # so warnings name the experiment and the path, not only a hash
    owners: dict[str, list[str]] = field(default_factory=dict)

    def describe(self, key: str) -> str:
        owned = self.owners.get(key)
        return f"{key[:14]}… ({', '.join(owned[:3])}{', …' if len(owned) > 3 else ''})" \
            if owned else key

    @property
    def diverged(self) -> list[RefResult]:
        """Refs the remote holds at another commit: left alone unless forced."""
        return [r for r in self.refs if r.status == "diverged"]

    @property
    def rejected(self) -> list[RefResult]:
        """Refs the git remote refused for another reason (a hook, permissions)."""
        return [r for r in self.refs if r.status == "rejected"]


@struct(frozen=True)
class RemoteExperiment:
    ref: str
    baseline: str
    name: str
    commit: str
    local: str | None  # the local commit of the same ref, if any

    @property
    def state(self) -> str:
        if self.local is None:
            return "new"
        return "same" if self.local == self.commit else "diverged"


# A pull that creates this many refs packs them (git would only at its next gc).
PACK_REFS_AFTER = 100


# -- git side ----------------------------------------------------------------------

_PUSH_FLAGS = {" ": "updated", "+": "forced", "*": "new", "=": "up-to-date", "-": "deleted"}


def _parse_push(text: str) -> list[RefResult]:
    results = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, spec, summary = parts[0], parts[1], parts[2]
        ref = spec.rpartition(":")[2]
        if flag == "!":
            # "[rejected] (non-fast-forward|fetch first)": the remote holds another commit;
            # "[remote rejected] (hook declined)" and the like: the remote refused it.
            diverged = summary.startswith("[rejected]") and (
                "non-fast-forward" in summary or "fetch first" in summary)
            results.append(RefResult(ref, "diverged" if diverged else "rejected", summary))
        else:
            results.append(RefResult(ref, _PUSH_FLAGS.get(flag, "updated"), summary))
    return results


def ls_remote(root: Path, git_remote: str = "origin") -> list[RemoteExperiment]:
    """The experiments on a git remote, each with the local commit of the same ref."""
    git = Git(root)
    out = git.out("ls-remote", git_remote, f"{EXPS_REFS}*")
    local = dict(line.split(" ", 1) for line in git.for_each_ref(EXPS_REFS))
    found = []
    for line in out.splitlines():
        commit, _, ref = line.partition("\t")
        parsed = parse_exp_ref(ref, commit)
        if parsed:
            found.append(RemoteExperiment(parsed.ref, parsed.baseline, parsed.name, commit,
                                          local.get(ref)))
    return found


def _check_not_shallow(git: Git) -> None:
    if git.out("rev-parse", "--is-shallow-repository") == "true":
        raise GitStateError(
            "this is a shallow clone: experiment commits need their baseline's history",
            hint="fetch the whole history (git fetch --unshallow); in CI check out with "
            "`fetch-depth: 0` (actions/checkout) or GIT_DEPTH: 0 (GitLab)",
        )


# -- artifacts ---------------------------------------------------------------------


def _stash_workspace_outputs(root: Path, store: Any, wanted: dict[str, str]) -> None:
    """Cache outputs still in the workspace unchanged (path -> key) that the store lacks."""
    from tether.cache.hashing import StatCache
    from tether.layout import tmp_dir
    from tether.pathguard import unsafe_reason

    cache = StatCache(tmp_dir(root) / "statcache.db")
    try:
        for path, key in wanted.items():
            if unsafe_reason(path) is not None:
                continue  # a hostile record's path: never read, let alone pushed
            full = root / path
            if not store.path_of(key).is_file() and cache.hash_path(full) == key:
                store.save(full, link=False, digest=key, cache=cache)
    finally:
        cache.close()


def _owners(records: Sequence[tuple[str, RunRecord | None]], data: dict[str, str],
            ) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for ref, record in records:
        for path, key in record_outputs(record).items():
            owners.setdefault(key, []).append(f"{path} of {ref.rsplit('/', 1)[-1]}")
    for path, key in data.items():
        owners.setdefault(key, []).append(f"{path} (tracked data)")
    return owners


def _transfer(root: Path, records: list[tuple[str, RunRecord | None]], *, push: bool,
              remote_name: str | None, data: dict[str, str] | None = None,
              progress: Progress | None = None) -> tuple[TransferResult, str] | None:
    from tether.cache.remote import pull_objects, pull_runs, push_objects, push_runs
    from tether.cache.runcache import RunCache, entry_keys
    from tether.config import transfer_jobs
    from tether.project import object_store, open_remote

    outputs = {p: k for _, rec in records for p, k in record_outputs(rec).items()}
    outputs.update(data or {})
    keys = {k for _, rec in records for k in record_outputs(rec).values()} | set(
        (data or {}).values())
    entries = {fp: e for ref, rec in records for fp, e in run_cache_entries(rec, ref).items()}
    if not keys and not entries:
        return None
    remote = open_remote(root, remote_name)
    store, runs, jobs = object_store(root), RunCache(root), transfer_jobs(root)
    if push:
        _stash_workspace_outputs(root, store, outputs)
        for fingerprint, entry in entries.items():
            if not runs.has(fingerprint):
                runs.put(fingerprint, entry)
            keys |= entry_keys(runs.get(fingerprint) or {})
        result = push_objects(store, remote, keys, jobs=jobs, progress=progress)
        result.runs = push_runs(runs, remote, entries, jobs=jobs)
    else:
        runs_pulled = pull_runs(runs, remote, entries, jobs=jobs)
        for fingerprint in entries:
            keys |= entry_keys(runs.get(fingerprint) or {})
        result = pull_objects(store, remote, keys, jobs=jobs, progress=progress)
        result.runs = runs_pulled
    return result, remote.name


def push(
    root: Path, git_remote: str = "origin", names: Sequence[str] = (), *, every: bool = False,
    baseline: str | None = None, artifacts: bool = True, force: bool = False,
    remote: str | None = None, progress: Progress | None = None,
) -> ShareReport:
    """Push experiment refs in one git push, then their artifacts and run-cache entries,
    and the content of the data inputs tracked with `tether add` (in the work tree and
    in those experiments)."""
    git = Git(root)
    git_remote, names = split_remote(git, git_remote, names, local=True)
    selected = select_local(git, names, every=every, baseline=baseline)
    report = ShareReport()
    data = tracked_data(git, [e.commit for e in selected], work_tree=True) if artifacts else {}
    if not selected and not data:
        return report
    records = read_records(git, [e.commit for e in selected]) if artifacts else []
    if artifacts and (data or any(record_outputs(r) for r in records)):
        from tether.config import get_remote

        get_remote(root, remote)  # no artifact remote: fail before anything moves
    if not selected:
        moved = _transfer(root, [], push=True, remote_name=remote, data=data,
                          progress=progress)
        if moved:
            report.artifacts, report.remote = moved
        log_transfer(PUSH, git_remote, [], artifacts=report.artifacts,
                     artifact_remote=report.remote)
        return report
    plus = "+" if force else ""
    if every:
        specs = [f"{plus}{EXPS_REFS}*:{EXPS_REFS}*"]
    elif baseline:
        base = f"{EXPS_REFS}{selected[0].baseline}/*"
        specs = [f"{plus}{base}:{base}"]
    else:
        specs = [f"{plus}{e.ref}:{e.ref}" for e in selected]
    proc = git.run("push", "--porcelain", git_remote, *specs, check=False, env=WITH_HOOKS)
    report.refs = _parse_push(proc.stdout.decode(errors="replace"))
    report.git_message = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0 and not report.refs:
        raise TransferRejected(
            f"`git push {git_remote}` failed: {report.git_message or proc.returncode}",
            hint="check the remote's name (`git remote -v`), address and your access to it")
    if artifacts:
        bad = {r.ref for r in report.diverged + report.rejected}
        kept = [(e.ref, rec) for e, rec in zip(selected, records, strict=True)
                if e.ref not in bad]
        moved = _transfer(root, kept, push=True, remote_name=remote, data=data,
                          progress=progress)
        if moved:
            report.artifacts, report.remote = moved
            report.owners = _owners(kept, data)
    log_transfer(PUSH, git_remote, report.refs, artifacts=report.artifacts,
                 artifact_remote=report.remote)
    return report


def push_artifacts(root: Path, refs: Sequence[str], *, remote: str | None = None,
                   ) -> TransferResult | None:
    """Send the outputs, run-cache entries and tracked data of the experiments at `refs`
    to the artifact remote (a queue worker on another machine does this after pushing
    the refs); None when nothing was to be sent."""
    git = Git(root)
    commits = [git.out("rev-parse", "--verify", f"{ref}^{{commit}}")
               for ref in refs]
    records = read_records(git, commits)
    moved = _transfer(root, list(zip(refs, records, strict=True)), push=True,
                      remote_name=remote, data=tracked_data(git, commits))
    return moved[0] if moved else None


def pull(
    root: Path, git_remote: str = "origin", names: Sequence[str] = (), *, every: bool = False,
    baseline: str | None = None, artifacts: bool = True, force: bool = False,
    remote: str | None = None, progress: Progress | None = None,
) -> ShareReport:
    """Fetch experiment refs (diverged ones only with `force`), then their artifacts."""
    git = Git(root)
    _check_not_shallow(git)
    git_remote, names = split_remote(git, git_remote, names, local=False)
    selected = select_remote(git, ls_remote(root, git_remote), names, every, baseline)
    report = ShareReport()
    fetch = [e for e in selected if e.state == "new" or (force and e.state == "diverged")]
    for exp in selected:
        if exp.state == "same":
            report.refs.append(RefResult(exp.ref, "up-to-date"))
        elif exp.state == "diverged" and not force:
            report.refs.append(RefResult(
                exp.ref, "diverged", f"local {exp.local[:10] if exp.local else ''} "
                f"!= remote {exp.commit[:10]}"))
    if fetch:
        plus = "+" if force else ""
        git.run("fetch", "--no-tags", "--no-write-fetch-head", git_remote,
                *(f"{plus}{e.ref}:{e.ref}" for e in fetch))
        report.refs += [RefResult(e.ref, "forced" if e.state == "diverged" else "new")
                        for e in fetch]
        if len(fetch) >= PACK_REFS_AFTER:
            git.run("pack-refs", "--all", check=False)  # loose refs slow every listing
    try:
        from tether.experiments.index import refresh

        refresh(git).close()
    except ImportError:  # pragma: no cover - the index ships with explore
        pass
    if artifacts:
        bad = {r.ref for r in report.diverged}
        chosen = [e for e in selected if e.ref not in bad]
        records = read_records(git, [e.commit for e in chosen])
        data = tracked_data(git, [e.commit for e in chosen])
        pairs = [(e.ref, r) for e, r in zip(chosen, records, strict=True)]
        moved = _transfer(root, pairs, data=data, push=False, remote_name=remote,
                          progress=progress)
        if moved:
            report.artifacts, report.remote = moved
            report.owners = _owners(pairs, data)
    log_transfer(PULL, git_remote, report.refs, artifacts=report.artifacts,
                 artifact_remote=report.remote)
    return report
