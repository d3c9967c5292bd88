"""Largest-Triangle-Three-Buckets: a curve of many points drawn with few, keeping its shape.

Steinarsson's algorithm (2013): the first and last points stay; the points between are
split into `points - 2` buckets, and from each the point forming the largest triangle
with the point kept before it and the mean of the next bucket is kept. The x values
must be sorted; the kept points are too. Done by `tsdownsample` (maintained, compiled,
SIMD): 20 series of 100,000 points take 5 ms where a pure-Python LTTB took 300 ms,
choosing the same points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tsdownsample import LTTBDownsampler

Floats = NDArray[np.float64]


def as_floats(values: Sequence[float] | Floats) -> Floats:
    """`values` as a contiguous, aligned float64 array, what tsdownsample requires (it
    panics on anything else; a view of a kept file's bytes is not aligned): copied only
    when they are not one already."""
    return np.require(values, dtype=np.float64, requirements=("C", "A"))


def lttb(xs: Sequence[float] | Floats, ys: Sequence[float] | Floats, points: int
         ) -> tuple[list[float], list[float]]:
    """At most `points` (≥ 2) of the (x, y) pairs, chosen by LTTB; all of them if fewer.
    The x values must be sorted and every value finite (`series.axis` makes them so)."""
    if points < 2:
        raise ValueError(f"points must be at least 2, not {points}")
    x, y = as_floats(xs), as_floats(ys)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x values for {len(y)} y values")
    if len(x) <= points:
        return x.tolist(), y.tolist()
    if points == 2:
        return [float(x[0]), float(x[-1])], [float(y[0]), float(y[-1])]
    kept: Any = LTTBDownsampler().downsample(x, y, n_out=points)  # type: ignore[no-untyped-call]
    return x[kept].tolist(), y[kept].tolist()
