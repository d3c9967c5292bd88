"""tether.structs: the dataclass behaviour the rest of tether relies on."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import ClassVar

import pytest

from tether.structs import FrozenInstanceError, asdict, field, replace, struct


@struct(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    note: str = field(default="", compare=False)


@struct
class Box:
    label: str
    items: list[Point] = field(default_factory=list)
    meta: dict[str, int] = field(default_factory=dict)
    kind: ClassVar[str] = "box"

    @property
    def size(self) -> int:
        return len(self.items)


def test_construction_defaults_and_factories() -> None:
    assert Point(1) == Point(x=1, y=0)
    assert Point(1, 2).y == 2
    first, second = Box("a"), Box("b")
    first.items.append(Point(3))
    assert second.items == [] and first.size == 1
    assert Box.kind == "box" and "kind" not in asdict(first)


def test_argument_errors() -> None:
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected arguments: z"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="two values for 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 4 arguments"):
        Point(1, 2, (), "", 5)  # type: ignore[call-arg]


def test_frozen_equality_hash_and_repr() -> None:
    point = Point(1, 2, note="a")
    with pytest.raises(FrozenInstanceError):
        point.x = 5  # type: ignore[misc]
    assert isinstance(FrozenInstanceError(), AttributeError)
    assert point == Point(1, 2, note="b")  # note is not compared
    assert hash(point) == hash(Point(1, 2))
    assert point != (1, 2)
    assert repr(point) == "Point(x=1, y=2, tags=(), note='a')"
    with pytest.raises(TypeError):
        hash(Box("a"))  # mutable structs are unhashable, as dataclasses


def test_replace_asdict_and_pickle() -> None:
    box = Box("a", [Point(1, tags=("t",))], {"n": 1})
    assert replace(Point(1, 2), y=5) == Point(1, 5)
    assert asdict(box) == {
        "label": "a",
        "items": [{"x": 1, "y": 0, "tags": ("t",), "note": ""}],
        "meta": {"n": 1},
    }
    assert pickle.loads(pickle.dumps(box)) == box
    assert pickle.loads(pickle.dumps(Point(4))) == Point(4)


def test_mutable_default_is_refused() -> None:
    with pytest.raises(ValueError, match="mutable default"):
        @struct
        class Bad:
            items: list[int] = []  # noqa: RUF012


def test_run_path_does_not_import_dataclasses() -> None:
    """`tether run` starts fast only if nothing on its path imports dataclasses."""
    code = (
        "import sys, tether.cli.main, tether.cli.run, tether.execute.runner; "
        "print('dataclasses' in sys.modules, 'inspect' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@struct
class Base:
    name: str
    size: int = 0
    tags: list[str] = field(default_factory=list)


@struct
class Child(Base):
    extra: str = ""
    size: int = 5  # declared again: keeps its place, takes the new default


def test_a_subclass_keeps_its_bases_fields() -> None:
    child = Child("a", extra="x")
    assert (child.name, child.size, child.tags, child.extra) == ("a", 5, [], "x")
    assert Child("a", 1, ["t"], "x") == child.__class__("a", size=1, tags=["t"], extra="x")
    assert repr(Child("a")) == "Child(name='a', size=5, tags=[], extra='')"
    assert asdict(replace(child, size=2)) == {"name": "a", "size": 2, "tags": [], "extra": "x"}
    assert Child("a") != Base("a", 5)  # another class: never equal
    with pytest.raises(TypeError, match="missing argument 'name'"):
        Child(extra="x")  # type: ignore[call-arg]


def test_frozen_and_mutable_structs_do_not_mix() -> None:
    with pytest.raises(TypeError, match="frozen struct cannot inherit from Base"):
        @struct(frozen=True)
        class FrozenChild(Base):  # type: ignore[misc]
            pass
    with pytest.raises(TypeError, match="mutable struct cannot inherit from Point"):
        @struct
        class MutableChild(Point):  # type: ignore[misc]
            pass
