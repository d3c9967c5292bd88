from __future__ import annotations

import pytest

from tether.spec import parse_duration
from tether.spec.values import normalize_path, parse_tolerance


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (" 10M ", 600.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["abc", "5 minutes", "h", "", None, True, [1], "1w"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 30s, 5m or 2h"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, -5, "0s"])
def test_parse_duration_rejects_non_positive(value: object) -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_duration(value)


def test_parse_tolerance() -> None:
    assert parse_tolerance(0.01) == ("abs", 0.01)
    assert parse_tolerance(2) == ("abs", 2.0)
    assert parse_tolerance("1%") == ("rel", 0.01)
    assert parse_tolerance("0.5%") == ("rel", 0.005)
    for bad in ("x%", "0.01", -1, True, None):
        with pytest.raises(ValueError):
            parse_tolerance(bad)


def test_normalize_path() -> None:
    assert normalize_path("data/", ".") == "data"
    assert normalize_path("./a/../b", ".") == "b"
    assert normalize_path("x.csv", "sub") == "sub/x.csv"
    assert normalize_path("../x.csv", "sub") == "x.csv"
    for bad in ("../x", "/etc/passwd", "C:/x", ""):
        with pytest.raises(ValueError):
            normalize_path(bad, ".")
