"""Sweeps: `-S train.lr=0.1,0.01 -S epochs=10,20` is a grid; `--repeat N` seeds copies.

A comma splits values only at the top level of the value: a YAML flow list or
map (`[1,2]`, `{a: 1, b: 2}`) or a quoted string (`"a,b"`) is one value.
"""

from __future__ import annotations

import itertools

from tether.errors import ParamsError, UsageError
from tether.structs import field, struct

_OPEN = {"[": "]", "{": "}"}


def split_values(raw: str) -> list[str]:
    """The values of one `-S KEY=V1,V2` right-hand side, brackets and quotes respected."""
    values: list[str] = []
    depth: list[str] = []
    quote: str | None = None
    current = ""
    for char in raw:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'" and not current.strip():
            quote = char
        elif char in _OPEN:
            depth.append(_OPEN[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == "," and not depth:
            values.append(current)
            current = ""
            continue
        current += char
    values.append(current)
    if len(values) > 1 and any(not value.strip() for value in values):
        raise ParamsError(f"sweep value {raw!r} has an empty item",
                          hint="write -S key=a,b,c (no empty item)")
    return values


def _split_override(text: str) -> list[str]:
    if "=" not in text:
        return [text]  # parse_override reports the mistake
    key, raw = text.split("=", 1)
    return [f"{key}={value}" for value in split_values(raw)]


@struct(frozen=True)
class SweepPoint:
    """One entry of a sweep: its overrides and extra environment (the seed)."""

    overrides: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    index: int = 0


def expand(overrides: list[str], repeat: int = 1) -> list[SweepPoint]:
    """Every grid point (in command-line order), each repeated with seeds 0..repeat-1."""
    if repeat < 1:
        raise UsageError(f"--repeat {repeat}: must be at least 1")
    axes = [_split_override(text) for text in overrides]
    points: list[SweepPoint] = []
    for combo in itertools.product(*axes):
        for seed in range(repeat):
            env = {"TETHER_SEED": str(seed)} if repeat > 1 else {}
            points.append(SweepPoint(tuple(combo), env, len(points)))
    return points


def in_place_notes(overrides: list[str]) -> list[str]:
    """What to say of each `-S key=a,b` of a run in place, where it is one value (a sweep
    is queued): documented, but easy to miss when a grid was meant."""
    notes = []
    for text in overrides:
        key, _, raw = text.partition("=")
        try:
            several = "=" in text and len(split_values(raw)) > 1
        except ParamsError:
            continue
        if several:
            notes.append(f"-S {text} sets {key} to one value, the text {raw!r}, in place; a "
                         f"sweep over its items needs --queue (tether run --queue -S {text})")
    return notes
