"""Memorable experiment names (`adjective-noun`) and name validation."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from tether.errors import ExperimentError

if TYPE_CHECKING:
    import random

ADJECTIVES = (
    "agile amber ample azure bold brave brisk calm candid civic clever cosmic crisp curly "
    "dapper deft eager early elder epic fair fancy fluid fond frank fresh gentle giddy glad "
    "grand green happy hardy hazy honest humble ideal jolly jumpy keen kind lively lucid "
    "lunar magic merry mild modest mossy neat nimble noble olive open plucky polar prime "
    "proud quick quiet rapid ready regal rosy rusty sandy sharp shiny silky sleek smart "
    "snowy solar solid spry stark steady stoic sunny swift tidy topaz tough trim true "
    "upbeat urban vivid warm wavy wily windy witty young zany zesty "
).split()
NOUNS = (
    "acorn alder anvil apple arrow aspen badge basil beacon birch bison brook cable canoe "
    "cedar comet coral crane creek daisy delta dingo eagle ember fable falcon fern finch "
    "fjord flint forge fox gecko geyser ginger glade goose grove harbor hazel heron hinge "
    "ibis iris jade jaguar kayak kettle koala lagoon lark lemon lotus lynx maple marsh "
    "meadow mesa moose nebula newt oasis orbit otter owl panda pebble pine plover pulsar "
    "quail quartz raven reef ridge robin sable sage salmon spruce stork summit tapir "
    "thistle tiger topaz tulip tundra vale walnut willow wren yak zebra "
).split()

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")


def is_valid_name(name: str) -> bool:
    """Whether `name` is a safe single ref component, as experiment names must be."""
    return bool(_NAME.match(name)) and ".." not in name and not name.endswith((".lock", "."))


def validate_name(name: str) -> str:
    """A user-given experiment name must be a safe single ref component."""
    if not is_valid_name(name):
        raise ExperimentError(
            f"invalid experiment name {name!r}",
            hint="use letters, digits, '.', '_', '+' and '-', starting with a letter or digit "
            "(at most 100 characters)",
        )
    return name


def _urandom_choice(words: list[str]) -> str:
    """A uniformly random word (os.urandom: importing `random` costs more)."""
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def generate_name(taken: set[str], rng: random.Random | None = None) -> str:
    """A fresh `adjective-noun` not in `taken` (with a number suffix if all are used)."""
    choice = rng.choice if rng is not None else _urandom_choice
    for _ in range(200):
        name = f"{choice(ADJECTIVES)}-{choice(NOUNS)}"
        if name not in taken:
            return name
    counter = 2
    while True:
        name = f"{choice(ADJECTIVES)}-{choice(NOUNS)}-{counter}"
        if name not in taken:
            return name
        counter += 1
