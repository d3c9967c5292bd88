"""The structured lines of pushes and pulls (`event=push|pull`), for those who run workers.

What `tether push` and `tether pull` print for people is theirs (cli/push.py); this is
the line a log collector keeps: how many refs, how many objects went each way, to
which remotes (credentials masked), and, bound by the caller, the run it was for, so
one `run_id` greps a queued run from its worker through the push of its result.

Logged only where the process already logs (a worker, a queue attempt) or where a
machine format was asked for (`--log-format logfmt|json`, `TETHER_LOG_FORMAT`): a
person pushing at a terminal sees the report, not log lines too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.cache.remote import TransferResult
from tether.logs import get_logger, requested
from tether.urls import mask_urls

LOGGER = "tether.share"
PUSH, PULL = "push", "pull"


def log_transfer(event: str, git_remote: str | None, refs: Sequence[Any], *,
                 artifacts: TransferResult | None = None, artifact_remote: str | None = None,
                 **extra: Any) -> None:
    """One `push` or `pull` line. `refs`: the refs moved or looked at (RefResult, whose
    `status` is counted, or ref names); `extra`: the line's own keys (None: left out)."""
    if not requested():
        return
    fields: dict[str, Any] = {"refs": len(refs)}
    for status, count in _statuses(refs).items():
        fields[f"refs_{status.replace('-', '_')}"] = count
    if artifacts is not None:
        moved = "objects_sent" if event == PUSH else "objects_received"
        fields.update({moved: len(artifacts.sent), "objects_present": artifacts.present,
                       "bytes": artifacts.bytes, "runs": artifacts.runs,
                       "objects_missing": len(artifacts.missing) or None,
                       "objects_failed": len(artifacts.failed) or None})
    fields["remote"] = mask_urls(git_remote) if git_remote else None
    fields["artifact_remote"] = mask_urls(artifact_remote) if artifact_remote else None
    failed = bool(artifacts is not None and artifacts.failed) or any(
        _status(ref) == "rejected" for ref in refs)
    log = get_logger(LOGGER)
    (log.warning if failed else log.info)(event, **fields, **extra)


def _status(ref: Any) -> str | None:
    status = getattr(ref, "status", None)
    return status if isinstance(status, str) else None


def _statuses(refs: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ref in refs:
        status = _status(ref)
        if status is not None:
            counts[status] = counts.get(status, 0) + 1
    return counts
