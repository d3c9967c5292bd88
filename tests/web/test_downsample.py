"""LTTB keeps a curve's ends and shape with at most the points asked for."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.web.downsample import lttb

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(ys=st.lists(finite, min_size=0, max_size=400), points=st.integers(2, 60),
       gaps=st.lists(st.floats(0, 10), min_size=400, max_size=400))
def test_first_and_last_kept_never_too_many_x_monotonic(
    ys: list[float], points: int, gaps: list[float]
) -> None:
    xs = []
    x = 0.0
    for gap in gaps[: len(ys)]:
        x += gap
        xs.append(x)
    kept_x, kept_y = lttb(xs, ys, points)
    assert len(kept_x) == len(kept_y) == min(len(ys), points)
    if ys:
        assert (kept_x[0], kept_y[0]) == (xs[0], ys[0])
        assert (kept_x[-1], kept_y[-1]) == (xs[-1], ys[-1])
    assert kept_x == sorted(kept_x)
    pairs = set(zip(xs, ys, strict=True))
    assert all(pair in pairs for pair in zip(kept_x, kept_y, strict=True))


def test_a_spike_survives_downsampling() -> None:
    xs = list(range(10_000))
    ys = [math.sin(x / 500) for x in xs]
    ys[6_543] = 50.0
    kept_x, kept_y = lttb(xs, ys, 100)
    assert len(kept_x) == 100 and 50.0 in kept_y


def test_fewer_than_two_points_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        lttb([1, 2, 3], [1, 2, 3], 1)
