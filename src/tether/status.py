"""The statuses of a run and of its stages, as records store them: spelled out only here."""

from __future__ import annotations

TYPE_CHECKING = False  # not imported from typing: training scripts import errors, and this
if TYPE_CHECKING:
    from typing import Final, Literal

    # How a supervised process ended.
    Outcome = Literal["success", "failed", "timeout", "stalled", "interrupted"]

SUCCESS: Final = "success"
FAILED: Final = "failed"
TIMEOUT: Final = "timeout"  # ran past its `timeout`
STALLED: Final = "stalled"  # printed nothing for its `stall_timeout`
INTERRUPTED: Final = "interrupted"  # Ctrl-C, SIGTERM, a stop requested
SKIPPED: Final = "skipped"  # a stage unchanged since it last succeeded: not run again
NOT_RUN: Final = "not_run"  # a stage after one that did not succeed
PLANNED: Final = "planned"  # a dry run's: never recorded

# A stage with one of these contributes its results (metrics, steps) to the run.
CONTRIBUTING: Final = (SUCCESS, SKIPPED)
