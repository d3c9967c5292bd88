"""What the viewer's endpoints share: the repository, its catalog, the security policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request

from tether.layout import view_steps_dir
from tether.record.stepfiles import SeriesFiles
from tether.web.catalog import Catalog
from tether.web.lru import LRU
from tether.web.security import Policy
from tether.web.series import SeriesStore


class Viewer:
    """One served repository."""

    def __init__(self, root: Path, catalog: Catalog, policy: Policy, *,
                 live_poll: float = 0.25) -> None:
        self.root = root
        self.catalog = catalog
        self.policy = policy
        self.live_poll = live_poll  # seconds between two looks at a running run's files
        self.series_cache = LRU(512)  # downsampled step series of recorded experiments
        # their step metric columns by commit, in memory and in .tether/view/steps/
        self.steps_store = SeriesStore(SeriesFiles(view_steps_dir(root)))

    def running_json(self) -> list[dict[str, Any]]:
        """The runs in progress (in place, --temp, queued on this machine), not yet
        recorded: name, run id, start, where."""
        from tether.web.live import running_runs

        return [run.to_json() for run in running_runs(self.root)]


def viewer_of(request: Request) -> Viewer:
    viewer: Viewer = request.app.state.viewer
    return viewer
