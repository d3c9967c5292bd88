"""Charts as SVG (polylines, axes, legend) and one self-contained HTML page.

No script, no style sheet and no font is fetched: the page holds its SVG inline and the
data it was drawn from as JSON, so it opens offline and can be attached anywhere.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from tether.plots.charts import Chart, Matrix

WIDTH, HEIGHT = 720, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 190, 34, 46  # RIGHT holds the legend
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
CELL = 34


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.ceil(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.6g}"


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11" '
            f'font-family="sans-serif"{extra}>{escape(text)}</text>')


def chart_svg(chart: Chart, *, standalone: bool = False) -> str:
    """One chart as SVG; `standalone`: a document of its own (SVG inlined in HTML needs no
    namespace, and the page keeps no URL at all)."""
    body = _confusion(chart) if chart.kind == "confusion" else _xy(chart)
    width, height = _size(chart)
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    return (f'<svg{namespace} width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" data-kind="{chart.kind}">'
            f"<title>{escape(chart.title)}</title>"
            + _text(width / 2, 18, chart.title, extra=' font-weight="bold"') + body + "</svg>")


def _size(chart: Chart) -> tuple[int, int]:
    if chart.kind != "confusion":
        return WIDTH, HEIGHT
    side = max((len(m.labels) for m in chart.matrices), default=1) * CELL + 110
    return max(WIDTH, side * len(chart.matrices)), side + 40


def _xy(chart: Chart) -> str:
    points = [p for line in chart.lines for p in line.points]
    if not points:
        return _text(WIDTH / 2, HEIGHT / 2, "no numeric data")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks, y_ticks = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    x_low, x_high = min(min(xs), x_ticks[0]), max(max(xs), x_ticks[-1])
    y_low, y_high = min(min(ys), y_ticks[0]), max(max(ys), y_ticks[-1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / ((x_high - x_low) or 1) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1) * plot_h

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
             'stroke="#999"/>']
    for x in x_ticks:
        parts.append(f'<line x1="{sx(x):.1f}" y1="{TOP + plot_h}" x2="{sx(x):.1f}" '
                     f'y2="{TOP + plot_h + 4}" stroke="#999"/>')
        parts.append(_text(sx(x), TOP + plot_h + 16, _label(x)))
    for y in y_ticks:
        parts.append(f'<line x1="{LEFT}" y1="{sy(y):.1f}" x2="{LEFT + plot_w}" '
                     f'y2="{sy(y):.1f}" stroke="#eee"/>')
        parts.append(_text(LEFT - 6, sy(y) + 4, _label(y), anchor="end"))
    parts.append(_text(LEFT + plot_w / 2, HEIGHT - 8, chart.x_label))
    parts.append(_text(14, TOP + plot_h / 2, chart.y_label,
                       extra=f' transform="rotate(-90 14 {TOP + plot_h / 2:.1f})"'))
    for index, line in enumerate(chart.lines):
        color = COLORS[index % len(COLORS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        parts.append(f'<g class="series" data-experiment="{escape(line.experiment)}">')
        if chart.kind == "scatter":
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>'
                      for x, y in line.points]
        else:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                         'stroke-width="1.6"/>')
        parts.append("</g>")
        legend_y = TOP + 8 + index * 16
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 8}" width="12" '
                     f'height="3" fill="{color}"/>')
        parts.append(_text(WIDTH - RIGHT + 30, legend_y - 3, line.experiment, anchor="start"))
    return "".join(parts)


def _confusion(chart: Chart) -> str:
    side = max((len(m.labels) for m in chart.matrices), default=1) * CELL + 110
    return "".join(_matrix(m, index * side, chart) for index, m in enumerate(chart.matrices))


def _matrix(matrix: Matrix, offset: float, chart: Chart) -> str:
    left, top = offset + 80, 60.0
    peak = max((c for row in matrix.counts for c in row), default=0) or 1
    parts = [f'<g class="series" data-experiment="{escape(matrix.experiment)}">',
             _text(left + len(matrix.labels) * CELL / 2, 40, matrix.experiment)]
    for i, actual in enumerate(matrix.labels):
        parts.append(_text(left - 6, top + i * CELL + CELL / 2 + 4, actual, anchor="end"))
        parts.append(_text(left + i * CELL + CELL / 2, top + len(matrix.labels) * CELL + 14,
                           matrix.labels[i]))
        for j, count in enumerate(matrix.counts[i]):
            shade = 0.1 + 0.8 * count / peak
            parts.append(f'<rect x="{left + j * CELL}" y="{top + i * CELL}" width="{CELL}" '
                         f'height="{CELL}" fill="#1f77b4" fill-opacity="{shade:.2f}" '
                         'stroke="#fff"/>')
            parts.append(_text(left + j * CELL + CELL / 2, top + i * CELL + CELL / 2 + 4,
                               str(count)))
    parts.append(_text(left + len(matrix.labels) * CELL / 2,
                       top + len(matrix.labels) * CELL + 30, f"{chart.x_label} →"))
    parts.append("</g>")
    return "".join(parts)


def html_page(title: str, charts: list[Chart], metrics: dict[str, dict[str, Any]]) -> str:
    """One self-contained page: a metrics table, every chart inline, the data as JSON."""
    names = sorted({k for values in metrics.values() for k in values})
    rows = "".join(
        f"<tr><th>{escape(exp)}</th>"
        + "".join(f"<td>{escape(_cell(values.get(k)))}</td>" for k in names) + "</tr>"
        for exp, values in metrics.items())
    table = (f"<table><tr><th>experiment</th>{''.join(f'<th>{escape(n)}</th>' for n in names)}"
             f"</tr>{rows}</table>" if names else "<p>no final metrics</p>")
    figures = "".join(f"<figure>{chart_svg(chart)}</figure>" for chart in charts)
    data = json.dumps({"metrics": metrics, "charts": [_chart_json(c) for c in charts]},
                      default=str).replace("<", "\\u003c")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "figure{margin:1em 0}</style></head><body>"
        f"<h1>{escape(title)}</h1><h2>Final metrics</h2>{table}<h2>Plots</h2>"
        + (figures or "<p>no step metrics or plots files in these experiments</p>")
        + f'<script type="application/json" id="tether-plots-data">{data}</script>'
        "</body></html>\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _chart_json(chart: Chart) -> dict[str, Any]:
    return {"title": chart.title, "kind": chart.kind, "x": chart.x_label, "y": chart.y_label,
            "series": [{"experiment": line.experiment, "points": line.points}
                       for line in chart.lines]
            + [{"experiment": m.experiment, "labels": m.labels, "counts": m.counts}
               for m in chart.matrices]}
