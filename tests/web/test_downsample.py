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


def test_columns_viewed_in_a_kept_file_downsample_like_lists() -> None:
    """A kept file's columns are views at an odd offset (not aligned), which the compiled
    LTTB refuses as they are: they are copied first, and give what lists give."""
    from array import array

    ys = [math.sin(x / 50) + (x % 7) / 10 for x in range(5_000)]
    xs = [float(x) for x in range(5_000)]
    data = b"\0" * 3 + array("d", xs).tobytes() + array("d", ys).tobytes()
    view = memoryview(data)
    x_view = view[3:3 + 8 * len(xs)].cast("d")
    y_view = view[3 + 8 * len(xs):].cast("d")
    import numpy as np

    unaligned = np.asarray(x_view, dtype=np.float64), np.asarray(y_view, dtype=np.float64)
    assert not unaligned[0].flags.aligned
    assert lttb(*unaligned, 300) == lttb(xs, ys, 300)
    assert len(lttb(xs, ys, 300)[0]) == 300
