"""Largest-Triangle-Three-Buckets: a curve of many points drawn with few, keeping its shape.

Steinarsson's algorithm (2013): the first and last points stay; the points between are
split into `points - 2` buckets, and from each the point forming the largest triangle
with the point kept before it and the mean of the next bucket is kept. The x values
must be sorted; the kept points are too. Written here because it is twenty lines, and
the maintained implementations need numpy, which the viewer does not otherwise need.
"""

from __future__ import annotations

from collections.abc import Sequence


def lttb(xs: Sequence[float], ys: Sequence[float], points: int
         ) -> tuple[list[float], list[float]]:
    """At most `points` (≥ 2) of the (x, y) pairs, chosen by LTTB; all of them if fewer."""
    count = len(xs)
    if points < 2:
        raise ValueError(f"points must be at least 2, not {points}")
    if count <= points:
        return list(xs), list(ys)
    if points == 2:
        return [xs[0], xs[-1]], [ys[0], ys[-1]]
    kept_x = [xs[0]]
    kept_y = [ys[0]]
    width = (count - 2) / (points - 2)
    previous = 0
    for bucket in range(points - 2):
        start = int(bucket * width) + 1
        end = int((bucket + 1) * width) + 1
        next_end = min(int((bucket + 2) * width) + 1, count)
        if bucket == points - 3:
            next_start, next_end = count - 1, count  # the last point is the next "bucket"
        else:
            next_start = end
        span = next_end - next_start
        mean_x = sum(xs[next_start:next_end]) / span
        mean_y = sum(ys[next_start:next_end]) / span
        ax, ay = xs[previous], ys[previous]
        # twice the triangle's area, |(ax - mx)(y - ay) - (ax - x)(my - ay)|, for the
        # whole bucket in one comprehension (a plain loop costs three times as much)
        slope_y, slope_x = ax - mean_x, mean_y - ay
        areas = [abs(slope_y * (y - ay) + slope_x * (x - ax))
                 for x, y in zip(xs[start:end], ys[start:end], strict=True)]
        best = start + areas.index(max(areas))
        kept_x.append(xs[best])
        kept_y.append(ys[best])
        previous = best
    kept_x.append(xs[-1])
    kept_y.append(ys[-1])
    return kept_x, kept_y
