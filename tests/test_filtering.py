"""The --filter grammar: tokens, precedence, missing values, and errors with a caret."""

from __future__ import annotations

from typing import Any

import pytest

from tether.errors import EXIT_USAGE, UsageError
from tether.experiments.filtering import Row, parse_filter, tokenize


def row(
    params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None, **columns: Any
) -> Row:
    base = {"name": "exp", "status": "success", "baseline": "abc", "created": 1_700_000_000.0,
            "duration": 12.5, "message": "hello"}
    return Row({**base, **columns}, params or {}, metrics or {})


def matches(expression: str, target: Row) -> bool:
    return parse_filter(expression)(target)


def test_tokens_carry_kind_value_and_position() -> None:
    tokens = tokenize("metrics.acc >= -1.5e2 and name == 'a b'")
    assert [(t.kind, t.value, t.position) for t in tokens] == [
        ("word", "metrics.acc", 0), ("op", ">=", 12), ("number", -150.0, 15),
        ("word", "and", 22), ("word", "name", 26), ("op", "==", 31), ("string", "a b", 34),
        ("end", None, 39),
    ]


def test_the_example_expression() -> None:
    expression = "metrics.acc > 0.9 and params.train.lr <= 0.01 and status == 'success'"
    assert matches(expression, row({"train.lr": 0.01}, {"acc": 0.95}))
    assert not matches(expression, row({"train.lr": 0.02}, {"acc": 0.95}))
    assert not matches(expression, row({"train.lr": 0.01}, {"acc": 0.95}, status="failed"))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # 'and' binds tighter than 'or'
        ("metrics.acc > 0.5 or metrics.acc < 0.1 and status == 'failed'", True),
        ("(metrics.acc > 0.5 or metrics.acc < 0.1) and status == 'failed'", False),
        ("not status == 'failed'", True),
        ("not not status == 'failed'", False),
        ("status in ('failed', 'success')", True),
        ("status not in ('failed', \"success\")", False),
        ("params.train.lr in (0.1, 0.01)", True),
        ("params.opt:momentum == 0.9", True),
        ("params.flag == true", True),
        ("params.flag == 1", False),  # booleans are not numbers
        ("params.nothing == null", True),
        ("params.nothing != null", False),
        ("duration >= 12.5 and duration < 13", True),
        ("name != 'other'", True),
        ("message == 'hello'", True),
        ("created > '2023-01-01' and created < '2099-12-31T10:00'", True),
        ("metrics.acc > 'text'", False),  # number vs string orders nothing
        ("metrics.nested.f1 <= 0.8", True),
    ],
)
def test_operators_and_precedence(expression: str, expected: bool) -> None:
    target = row({"train.lr": 0.01, "opt:momentum": 0.9, "flag": True, "nothing": None},
                 {"acc": 0.7, "nested.f1": 0.8})
    assert matches(expression, target) is expected


@pytest.mark.parametrize(
    "expression",
    ["metrics.loss < 1", "metrics.loss >= 1", "metrics.loss == 1", "metrics.loss != 1",
     "metrics.loss in (1, 2)", "metrics.loss not in (1, 2)", "params.lr == null"],
)
def test_comparisons_with_a_missing_value_are_false(expression: str) -> None:
    assert not matches(expression, row())
    assert matches(f"not {expression}", row())


@pytest.mark.parametrize(
    ("expression", "caret_at", "words"),
    [
        ("metrics.acc >> 0.9", 13, "expected a value"),
        ("metrics.acc > 0.9 and", 21, "expected a column"),
        ("metrics.acc > 0.9 status == 'x'", 18, "expected 'and' or 'or'"),
        ("acc > 0.9", 0, "unknown column 'acc'"),
        ("metrics. > 1", 0, "unknown column"),
        ("status == 'unterminated", 10, "unexpected character"),
        ("(status == 'a'", 14, "expected ')'"),
        ("status in 'a'", 10, "expected '('"),
        ("status not 'a'", 11, "expected 'in' after 'not'"),
        ("status", 6, "expected a comparison"),
        ("metrics.acc > 0.9 & 1", 18, "unexpected character '&'"),
        ("created > 'yesterday'", 10, "not an ISO date"),
        ("", 0, "empty"),
    ],
)
def test_errors_point_a_caret_at_the_problem(expression: str, caret_at: int, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_filter(expression)
    error = caught.value
    assert error.exit_code == EXIT_USAGE
    assert words in error.message
    lines = error.message.splitlines()
    assert lines[1] == f"  {expression}"
    assert lines[2] == "  " + " " * caret_at + "^"


def test_never_evaluates_python() -> None:
    with pytest.raises(UsageError):
        parse_filter("__import__('os').system('true')")
