"""The `--filter` expression language of `tether show`.

A tokenizer and a recursive-descent parser (never `eval`) for expressions like

    metrics.acc > 0.9 and params.train.lr <= 0.01 and status == 'success'

Grammar, loosest binding first:

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := column (op literal | ["not"] "in" "(" literal ("," literal)* ")")
                | "(" expr ")"
    op         := "==" | "!=" | "<" | "<=" | ">" | ">="
    literal    := number | 'string' | "string" | true | false | null

Columns are `name`, `status`, `baseline`, `created`, `duration`, `message`,
`params.<dotted key>` and `metrics.<dotted key>`. A comparison whose column has
no value for an experiment is false; so is an ordering comparison between a
number and a string. `created` compares as a Unix time, or as an ISO date when
the literal is a string (`created >= '2026-01-31'`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from tether.errors import UsageError
from tether.structs import struct

PLAIN_COLUMNS = ("name", "status", "baseline", "created", "duration", "message")
PREFIXED_COLUMNS = ("params.", "metrics.")
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.:/\-]*)
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")


@struct(frozen=True)
class Token:
    kind: str  # number string op punct word end
    text: str
    value: Any
    position: int


class Row:
    """What a filter reads of one experiment: plain columns plus params and metrics."""

    __slots__ = ("columns", "metrics", "params")

    def __init__(
        self, columns: Mapping[str, Any], params: Mapping[str, Any], metrics: Mapping[str, Any]
    ) -> None:
        self.columns = columns
        self.params = params
        self.metrics = metrics


Predicate = Callable[[Row], bool]


class FilterError(UsageError):
    """An invalid filter expression; `position` is where its caret points (0-based)."""

    def __init__(self, expression: str, position: int, problem: str) -> None:
        caret = " " * position + "^"
        super().__init__(
            f"invalid --filter expression: {problem}\n  {expression}\n  {caret}",
            hint="example: metrics.acc > 0.9 and params.train.lr <= 0.01 "
            "and status == 'success'",
        )
        self.expression = expression
        self.position = position
        self.problem = problem


def filter_error(expression: str, position: int, problem: str) -> FilterError:
    """A UsageError quoting the expression with a caret under `position`."""
    return FilterError(expression, position, problem)


def tokenize(expression: str) -> list[Token]:
    """The tokens of `expression`, ending with an `end` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise filter_error(expression, pos, f"unexpected character {expression[pos]!r}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "number":
            value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            tokens.append(Token(kind, text, value, pos))
        elif kind == "string":
            tokens.append(Token(kind, text, _ESCAPE.sub(r"\1", text[1:-1]), pos))
        elif kind != "space":
            tokens.append(Token(kind, text, text, pos))
        pos = match.end()
    tokens.append(Token("end", "", None, len(expression)))
    return tokens


def parse_filter(expression: str) -> Predicate:
    """Compile `expression` into a predicate over Rows; a UsageError with a caret if invalid."""
    return _Parser(expression).parse()


_MISSING = object()


def _column_getter(name: str) -> Callable[[Row], Any]:
    if name.startswith("params."):
        key = name[len("params."):]
        return lambda row: row.params.get(key, _MISSING)
    if name.startswith("metrics."):
        key = name[len("metrics."):]
        return lambda row: row.metrics.get(key, _MISSING)
    return lambda row: row.columns.get(name, _MISSING)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    if left is _MISSING:
        return False
    if op is operator.eq or op is operator.ne:
        equal = isinstance(left, bool) == isinstance(right, bool) and left == right
        return equal if op is operator.eq else not equal
    both_numbers = _is_number(left) and _is_number(right)
    if both_numbers or (isinstance(left, str) and isinstance(right, str)):
        return bool(op(left, right))
    return False


MAX_NESTING = 100  # parentheses and `not`s inside each other; deeper is refused, not recursed


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = tokenize(expression)
        self.index = 0
        self.depth = 0

    def enter(self, token: Token) -> None:
        """One level deeper (a parenthesis or `not`); refused past MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nested more than {MAX_NESTING} levels deep", token)

    # -- helpers -------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def error(self, problem: str, token: Token | None = None) -> UsageError:
        token = token or self.current
        return filter_error(self.expression, token.position, problem)

    def describe(self, token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else repr(token.text)

    def is_word(self, word: str) -> bool:
        return self.current.kind == "word" and self.current.text == word

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def expect_punct(self, text: str) -> None:
        if self.current.kind != "punct" or self.current.text != text:
            raise self.error(f"expected {text!r}, found {self.describe(self.current)}")
        self.advance()

    # -- grammar -------------------------------------------------------------

    def parse(self) -> Predicate:
        if self.current.kind == "end":
            raise self.error("the expression is empty")
        predicate = self.or_expr()
        if self.current.kind != "end":
            raise self.error(f"unexpected {self.describe(self.current)}; expected 'and' or 'or'")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.is_word("or"):
            self.advance()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(part(row) for part in parts)

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.is_word("and"):
            self.advance()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(part(row) for part in parts)

    def not_expr(self) -> Predicate:
        if self.is_word("not"):
            self.enter(self.advance())
            inner = self.not_expr()
            self.depth -= 1
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.current
        if token.kind == "punct" and token.text == "(":
            self.enter(self.advance())
            inner = self.or_expr()
            self.expect_punct(")")
            self.depth -= 1
            return inner
        column = self.column()
        get = _column_getter(column)
        if self.current.kind == "op":
            op_token = self.advance()
            op = _COMPARISONS[op_token.text]
            literal = self.literal(column)
            return lambda row: _compare(op, get(row), literal)
        negate = False
        if self.is_word("not"):
            self.advance()
            negate = True
            if not self.is_word("in"):
                raise self.error(f"expected 'in' after 'not', found {self.describe(self.current)}")
        if self.is_word("in"):
            self.advance()
            choices = self.literal_list(column)
            if negate:
                return lambda row: (value := get(row)) is not _MISSING and not any(
                    _compare(operator.eq, value, c) for c in choices)
            return lambda row: any(_compare(operator.eq, get(row), c) for c in choices)
        raise self.error(
            f"expected a comparison (== != < <= > >= in) after {column!r}, "
            f"found {self.describe(self.current)}"
        )

    def column(self) -> str:
        token = self.current
        if token.kind != "word" or token.text in _KEYWORDS:
            raise self.error(f"expected a column such as metrics.acc, found {self.describe(token)}")
        name = token.text
        if name in PLAIN_COLUMNS or any(
            name.startswith(p) and len(name) > len(p) for p in PREFIXED_COLUMNS
        ):
            self.advance()
            return name
        raise self.error(
            f"unknown column {name!r}; columns are {', '.join(PLAIN_COLUMNS)}, "
            "params.<key> and metrics.<key>"
        )

    def literal(self, column: str) -> Any:
        token = self.current
        if token.kind in ("number", "string"):
            self.advance()
            value = token.value
        elif token.kind == "word" and token.text in ("true", "false", "null"):
            self.advance()
            value = {"true": True, "false": False, "null": None}[token.text]
        else:
            raise self.error(
                f"expected a value (number, 'string', true, false, null), "
                f"found {self.describe(token)}"
            )
        if column == "created" and isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                raise self.error(f"{value!r} is not an ISO date like '2026-01-31'", token) from None
        return value

    def literal_list(self, column: str) -> list[Any]:
        self.expect_punct("(")
        values = [self.literal(column)]
        while self.current.kind == "punct" and self.current.text == ",":
            self.advance()
            values.append(self.literal(column))
        self.expect_punct(")")
        return values
