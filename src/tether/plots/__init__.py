"""`tether plots`: step metrics, dvclive series and plots files of experiments, overlaid.

`data` reads experiments, `charts` decides what to draw, `render` draws SVG and HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

from tether.gitstore.git import Git
from tether.plots.data import DEFAULT_LIMIT
from tether.structs import struct

HTML_NAME = "index.html"


@struct(frozen=True)
class PlotsWritten:
    """The files written, and what they show."""

    files: list[Path]
    experiments: list[str]
    charts: int


def write_plots(git: Git, names: list[str], out_dir: Path, *, svg: bool = False,
                limit: int = DEFAULT_LIMIT) -> PlotsWritten:
    """Write `out_dir/index.html` (or one SVG per chart with `svg`) for the experiments
    `names` (default: the latest `limit` recorded against HEAD)."""
    from tether.atomic import write_text
    from tether.plots.charts import build_charts
    from tether.plots.data import load_experiments
    from tether.plots.render import chart_svg, html_page

    experiments = load_experiments(git, names, limit=limit)
    charts = build_charts(experiments)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if svg:
        taken: set[str] = set()
        for chart in charts:
            stem = _slug(chart.title)
            name, n = stem, 1
            while name in taken:
                n += 1
                name = f"{stem}-{n}"
            taken.add(name)
            path = out_dir / f"{name}.svg"
            write_text(path, '<?xml version="1.0" encoding="UTF-8"?>\n'
                       + chart_svg(chart, standalone=True) + "\n", fsync=False)
            files.append(path)
    else:
        title = "tether plots: " + ", ".join(e.name for e in experiments)
        page = html_page(title, charts, {e.name: e.metrics for e in experiments})
        path = out_dir / HTML_NAME
        write_text(path, page, fsync=False)
        files.append(path)
    return PlotsWritten(files=files, experiments=[e.name for e in experiments],
                        charts=len(charts))


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", title).strip("-.")[:80] or "plot"
