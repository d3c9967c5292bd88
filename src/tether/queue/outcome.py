"""How an attempt's result, as its child process reported it, ends the entry's attempt."""

from __future__ import annotations

from typing import Any

from tether.queue.base import CANCELLED, DONE, FAILED, MAX_LOST, QUEUED, RETRYING, Entry, Outcome
from tether.status import INTERRUPTED, SUCCESS


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2·base, 4·base... capped."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


def attempt_outcome(entry: Entry, result: dict[str, Any], now: float, *, backoff: float,
                    backoff_max: float, requeue: bool) -> Outcome | None:
    """The `Outcome` to report for `result` (None: the attempt was abandoned to a new owner).

    `requeue`: the worker is stopping with --on-term requeue (abandoned runs go back).
    """
    kind = result.get("outcome")
    if kind == "recorded":
        status = result.get("status")
        state = {SUCCESS: DONE, INTERRUPTED: CANCELLED}.get(str(status), FAILED)
        return Outcome(state, status=status, result_ref=result.get("ref"))
    if kind == "retry":
        failures = dict(entry.stage_failures)
        failures[result["stage"]] = failures.get(result["stage"], 0) + 1
        delay = backoff_delay(failures[result["stage"]], backoff, backoff_max)
        code = result.get("exit_code")
        error = f"stage {result['stage']} {result['status']}" + (
            f" (exit {code})" if code is not None else "") + f"; retry in {delay:g}s"
        return Outcome(RETRYING, error=error, not_before=now + delay, stage_failures=failures)
    if kind == "abandoned" or result.get("abandoned"):
        return Outcome(QUEUED, error="requeued: the worker was stopped") if requeue else None
    if kind == "stopped":
        return Outcome(CANCELLED, error="killed before its first stage")
    if kind == "crashed" and entry.attempt < MAX_LOST:
        delay = backoff_delay(entry.attempt, backoff, backoff_max)
        return Outcome(RETRYING, error=result["error"], not_before=now + delay)
    return Outcome(FAILED, error=str(result.get("error")))
