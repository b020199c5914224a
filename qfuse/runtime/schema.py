"""One validated reader for every JSON document qfuse reads back from disk.

Cache group files, compiled pipelines, bundle manifests and tuning tables come from the
file system, where anything can happen to them (damage, edits, another qfuse version).
Each is read with :func:`load_json` against a small declarative schema, so a damaged
document raises one error type, :class:`SchemaError`, that names the document and the
place inside it (``manifest.json: $.pipelines.rms.artifact: expected a string, got
int``), instead of a ``KeyError`` or ``AttributeError`` from deep inside a loader.

Schemas are built from Python types (``str``, ``int``, ``float``, ``bool``, ``dict``,
``list``; ``int`` never accepts ``bool``, ``float`` accepts ``int``) and the combinators
below; unknown keys in an :class:`Obj` are allowed, so newer writers stay readable.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Callable

from ..errors import QfuseError

__all__ = ["SchemaError", "Anything", "Opt", "ListOf", "MapOf", "Obj", "TupleOf", "Where",
           "Either", "check", "load_json", "dataclass_spec", "IDENT", "SHA256"]


class SchemaError(QfuseError):
    """A JSON document is not shaped as expected; the message says where and how."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


class Spec:
    """A schema node: ``check(value, where)`` raises :class:`SchemaError` or returns."""

    what = "a value"

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError

    def fail(self, value: Any, where: str) -> None:
        raise SchemaError(f"{where}: expected {self.what}, got {_kind(value)}")


class Anything(Spec):
    def check(self, value: Any, where: str) -> None:
        return None


class _Type(Spec):
    _NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
              dict: "an object", list: "a list", type(None): "null"}

    _PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "booleans",
                dict: "objects", list: "lists", type(None): "nulls"}

    def __init__(self, t: type):
        self.t = t
        self.what = self._NAMES[t]
        self.plural = self._PLURALS[t]

    def check(self, value: Any, where: str) -> None:
        ok = (isinstance(value, (int, float)) if self.t is float else isinstance(value, self.t))
        if not ok or (self.t in (int, float) and isinstance(value, bool)):
            self.fail(value, where)


def spec(s: Any) -> Spec:
    """A :class:`Spec` for ``s`` (a Spec, or one of the plain Python types above)."""
    return s if isinstance(s, Spec) else _Type(s)


class Opt(Spec):
    """``null`` or ``inner``."""

    def __init__(self, inner: Any):
        self.inner = spec(inner)
        self.what = f"{self.inner.what} or null"

    def check(self, value: Any, where: str) -> None:
        if value is not None:
            self.inner.check(value, where)


class ListOf(Spec):
    def __init__(self, item: Any):
        self.item = spec(item)
        self.what = f"a list of {self.item.plural}" if isinstance(self.item, _Type) else "a list"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            self.fail(value, where)
        for i, v in enumerate(value):
            self.item.check(v, f"{where}[{i}]")


class MapOf(Spec):
    """An object with any keys (each accepted by ``key``) whose values match ``value``."""

    def __init__(self, value: Any, key: Any = str):
        self.value, self.key = spec(value), spec(key)
        self.what = "an object"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, where)
        for k, v in value.items():
            self.key.check(k, f"{where} key {k!r}")
            self.value.check(v, f"{where}.{k}")


class Obj(Spec):
    """An object with ``required`` keys and, when present, ``optional`` ones; other keys
    are allowed unless ``closed`` (for objects splatted into a constructor)."""

    what = "an object"

    def __init__(self, required: dict, optional: typing.Optional[dict] = None,
                 closed: bool = False):
        self.required = {k: spec(v) for k, v in required.items()}
        self.optional = {k: spec(v) for k, v in (optional or {}).items()}
        self.closed = closed

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, where)
        if self.closed:
            extra = sorted(set(value) - set(self.required) - set(self.optional))
            if extra:
                raise SchemaError(f"{where}: unknown key {extra[0]!r:.80}")
        for k, s in self.required.items():
            if k not in value:
                raise SchemaError(f"{where}: missing key {k!r}")
            s.check(value[k], f"{where}.{k}")
        for k, s in self.optional.items():
            if k in value:
                s.check(value[k], f"{where}.{k}")


class TupleOf(Spec):
    """A list of fixed length, item ``i`` matching ``items[i]``."""

    def __init__(self, *items: Any):
        self.items = [spec(i) for i in items]
        self.what = f"a list of {len(self.items)} items ({', '.join(i.what for i in self.items)})"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list) or len(value) != len(self.items):
            self.fail(value, where)
        for i, (s, v) in enumerate(zip(self.items, value)):
            s.check(v, f"{where}[{i}]")


class Where(Spec):
    """``inner``, and ``test(value)`` holds (``what`` says what the test wants)."""

    def __init__(self, inner: Any, test: Callable[[Any], bool], what: str):
        self.inner, self.test, self.what = spec(inner), test, what

    def check(self, value: Any, where: str) -> None:
        self.inner.check(value, where)
        if not self.test(value):
            raise SchemaError(f"{where}: expected {self.what}, got {value!r:.80}")


class Either(Spec):
    """The first of ``options`` that accepts the value."""

    def __init__(self, *options: Any):
        self.options = [spec(o) for o in options]
        self.what = " or ".join(o.what for o in self.options)

    def check(self, value: Any, where: str) -> None:
        for o in self.options:
            try:
                o.check(value, where)
                return
            except SchemaError:
                continue
        self.fail(value, where)


def _is_sha256(v: str) -> bool:
    return len(v) == 64 and all(c in "0123456789abcdef" for c in v)


IDENT = Where(str, str.isidentifier, "a Python identifier")
SHA256 = Where(str, _is_sha256, "a sha256 hex digest")


def check(value: Any, schema: Any, where: str = "$") -> None:
    """Raise :class:`SchemaError` unless ``value`` matches ``schema``."""
    try:
        spec(schema).check(value, where)
    except RecursionError:
        raise SchemaError(f"{where}: nested too deeply") from None


def load_json(raw: bytes, schema: Any, what: str) -> Any:
    """Decode ``raw`` (UTF-8 JSON) and check it against ``schema``; ``what`` names the
    document in errors (a file path, ``cache group ...``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(f"{what}: not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{what}: not valid JSON ({e.msg}, line {e.lineno} column "
                          f"{e.colno})") from None
    except RecursionError:
        raise SchemaError(f"{what}: nested too deeply") from None
    check(doc, schema, f"{what}: $")
    return doc


_UNIONS = (typing.Union, types.UnionType)          # Optional[X] and X | None
_TYPE_SPECS = {str: str, int: int, float: float, bool: bool, tuple: ListOf(Anything()),
               list: ListOf(Anything()), dict: MapOf(Anything())}


def _hint_spec(hint: Any) -> Spec:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in _UNIONS and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return Opt(_hint_spec(rest[0]) if len(rest) == 1 else Anything())
    return spec(_TYPE_SPECS.get(hint, Anything()))


def dataclass_spec(cls: type, overrides: typing.Optional[dict] = None,
                   closed: bool = False) -> Obj:
    """The schema of ``dataclasses.asdict(instance of cls)`` (tuples become lists), from
    the field annotations: fields without a default are required. ``overrides`` gives
    the spec of chosen fields (nested dataclasses, identifiers), so the schema follows
    the dataclass when a field is added; ``closed`` refuses keys that are not fields."""
    hints = typing.get_type_hints(cls)
    overrides = overrides or {}
    required, optional = {}, {}
    for f in dataclasses.fields(cls):
        s = overrides.get(f.name) or _hint_spec(hints[f.name])
        has_default = (f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING)
        (optional if has_default else required)[f.name] = s
    return Obj(required, optional, closed)
