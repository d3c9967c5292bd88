"""The PyYAML-free helpers must agree with PyYAML exactly, or step aside."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tether.yamledit import NOTHING, parse_scalar, render, set_value

SCALARS = [
    "1", "-3", "0", "012", "0x1f", "1_000", "1.5", "-0.25", "1e5", "1.0e-5", ".5",
    "true", "True", "yes", "off", "y", "n", "null", "~", "adam", "relu/x", "a b",
    "[1,2]", "{a: 1}", "'quoted'", "2024-01-01", "1:30", ".inf", "NaN",
]


@pytest.mark.parametrize("text", SCALARS)
def test_parse_scalar_agrees_with_pyyaml(text: str) -> None:
    parsed = parse_scalar(text)
    if parsed is not NOTHING:
        assert parsed == yaml.safe_load(text) and type(parsed) is type(yaml.safe_load(text))


VALUES: list[Any] = [
    0, -7, 0.01, 1e-05, 1.5e300, float("inf"), True, False, None, "text", "yes", "1.5",
    "with: colon # and hash", "ünï", [1, 0.5, "a"], {"k": [1, {"n": None}]}, [],
]


@pytest.mark.parametrize("value", VALUES)
def test_render_round_trips(value: Any) -> None:
    assert yaml.safe_load(render(value)) == value


DOC = """\
# experiment params
prepare:
  split: 0.25   # test fraction
  seed: 0
train:
  lr: 0.01 # learning rate
  layers: [64, 32]
  optimizer:
    name: adam
  epochs: 10
"""


@pytest.mark.parametrize(
    ("key", "value"),
    [("prepare.split", 0.3), ("train.lr", 1e-05), ("train.layers", [8]),
     ("train.optimizer.name", "sgd with: colon"), ("train.epochs", None)],
)
def test_set_value_keeps_comments_and_agrees(key: str, value: Any) -> None:
    edited = set_value(DOC, key, value)
    assert edited is not None
    expected = yaml.safe_load(DOC)
    node = expected
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    assert yaml.safe_load(edited) == expected
    assert edited.count("#") == DOC.count("#")


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (DOC, "train.optimizer"),  # a block below: not a scalar edit
        (DOC, "train.missing"),
        ("a: &x 1\nb: *x\n", "a"),
        ("a:\n  - 1\n  - 2\n", "a.0"),
        ("a: 'q'\n", "a"),
        ("a: [1,\n  2]\n", "a"),
        ("---\na: 1\n", "a"),
    ],
)
def test_set_value_steps_aside_when_unsure(doc: str, key: str) -> None:
    assert set_value(doc, key, 5) is None
