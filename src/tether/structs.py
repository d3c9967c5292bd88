"""Record classes that cost nothing to define: `@struct`, `field`, `replace`, `asdict`.

They behave like `dataclasses` for what tether uses (keyword or positional
construction with defaults and default factories, repr, equality, `frozen=True`
with hashing, `replace`, `asdict`) and type checkers see them as dataclasses
through `dataclass_transform`. Why not `dataclasses` itself: importing it pulls in
`inspect` (with `ast`, `dis`, `tokenize`), about 16 ms, and each definition then
compiles several methods, which together cost `tether run` a third of its 100 ms
budget. Here every class shares the same few methods, driven by its field table,
so a definition is a walk over its annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Raised on assignment to a field of a frozen struct."""


class _Field:
    __slots__ = ("compare", "default", "default_factory", "hash", "repr")

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        repr: bool = True,
        compare: bool = True,
        hash: bool | None = None,
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare
        self.hash = compare if hash is None else hash


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] = _MISSING,
    repr: bool = True,
    compare: bool = True,
    hash: bool | None = None,
) -> Any:
    """Per-field options, as `dataclasses.field`."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("field() takes a default or a default_factory, not both")
    return _Field(default, default_factory, repr, compare, hash)


class _Spec:
    """What the shared methods need to know about one struct class."""

    __slots__ = (
        "compared", "defaults", "factories", "frozen", "hashed", "names", "options", "shown",
    )
    frozen: bool
    options: dict[str, _Field]

    def __init__(self, cls: type, frozen: bool) -> None:
        # A subclass has its bases' fields first, then its own (a field it declares
        # again keeps its place), as with dataclasses.
        options: dict[str, _Field] = {}
        for base in reversed(cls.__mro__[1:]):
            inherited: _Spec | None = base.__dict__.get("__struct__")
            if inherited is None:
                continue
            if inherited.frozen != frozen:
                kind = "frozen" if frozen else "mutable"
                raise TypeError(f"{cls.__name__}: a {kind} struct cannot inherit from "
                                f"{base.__name__}, which is not")
            options.update(inherited.options)
        annotations: dict[str, Any] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, annotation in annotations.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            value = cls.__dict__.get(name, _MISSING)
            own = value if isinstance(value, _Field) else _Field(value, _MISSING)
            if isinstance(own.default, list | dict | set):
                raise ValueError(f"{cls.__name__}.{name}: mutable default, use default_factory")
            if own.default is not _MISSING:
                setattr(cls, name, own.default)
            elif own.default_factory is not _MISSING and isinstance(value, _Field):
                delattr(cls, name)
            options[name] = own
        self.options = options
        self.defaults: dict[str, Any] = {}
        self.factories: dict[str, Callable[[], Any]] = {}
        for name, option in options.items():
            if option.default is not _MISSING:
                self.defaults[name] = option.default
            elif option.default_factory is not _MISSING:
                self.factories[name] = option.default_factory
            elif self.defaults or self.factories:
                raise TypeError(f"{cls.__name__}.{name}: a field without a default follows "
                                "one with a default")
        self.names = tuple(options)
        self.shown = tuple(name for name, option in options.items() if option.repr)
        self.compared = tuple(name for name, option in options.items() if option.compare)
        self.hashed = tuple(name for name, option in options.items() if option.hash)
        self.frozen = frozen


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    spec: _Spec = type(self).__struct__
    names = spec.names
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, "
                        f"{len(args)} given")
    put = object.__setattr__
    for index, name in enumerate(names):
        if index < len(args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got two values for {name!r}")
            put(self, name, args[index])
        elif name in kwargs:
            put(self, name, kwargs.pop(name))
        elif name in spec.defaults:
            put(self, name, spec.defaults[name])
        elif name in spec.factories:
            put(self, name, spec.factories[name]())
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments: "
                        f"{', '.join(sorted(kwargs))}")


def _repr(self: Any) -> str:
    spec: _Spec = type(self).__struct__
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in spec.shown)
    return f"{type(self).__qualname__}({inner})"


def _values(self: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in names)


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    names: tuple[str, ...] = type(self).__struct__.compared  # type: ignore[attr-defined]
    return bool(_values(self, names) == _values(other, names))


def _hash(self: Any) -> int:
    return hash(_values(self, type(self).__struct__.hashed))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of {type(self).__name__}")


def _make(cls: type[_T], frozen: bool) -> type[_T]:
    spec = _Spec(cls, frozen)
    methods: dict[str, Any] = {"__init__": _init, "__repr__": _repr, "__eq__": _eq}
    if frozen:
        methods.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr, __hash__=_hash)
    elif cls.__dict__.get("__hash__") is None:
        methods["__hash__"] = None  # mutable and compared by value: unhashable, as dataclasses
    methods.update(__struct__=spec, __match_args__=spec.names)
    for name, method in methods.items():
        if name not in cls.__dict__ or name in ("__hash__", "__struct__", "__match_args__"):
            setattr(cls, name, method)
    return cls


@overload
def struct(cls: type[_T], /) -> type[_T]: ...


@overload
def struct(*, frozen: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(field,))
def struct(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """Make `cls` a record class from its annotated fields (`@struct` or `@struct(frozen=True)`)."""
    if cls is None:
        return lambda inner: _make(inner, frozen)
    return _make(cls, frozen)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the struct `obj` with some fields changed."""
    spec: _Spec = type(obj).__struct__  # type: ignore[attr-defined]
    values = {name: getattr(obj, name) for name in spec.names}
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> Any:
    """`obj` with every struct in it turned into a dict, recursively (lists, tuples, dicts)."""
    spec: _Spec | None = getattr(type(obj), "__struct__", None)
    if spec is not None:
        return {name: asdict(getattr(obj, name)) for name in spec.names}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(asdict(item) for item in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(asdict(item) for item in obj)
    if isinstance(obj, dict):
        return type(obj)((asdict(key), asdict(value)) for key, value in obj.items())
    return obj
