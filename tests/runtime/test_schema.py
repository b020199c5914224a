"""The one JSON reader: what each schema node accepts, and errors that name the place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from qfuse.backends.files import confine, is_safe_relpath, safe_component
from qfuse.errors import QfuseError
from qfuse.runtime.schema import (IDENT, Either, ListOf, MapOf, Obj, Opt, SchemaError, TupleOf,
                                  check, dataclass_spec, load_json)

DOC = Obj({"name": IDENT, "sizes": ListOf(int), "by": MapOf(Opt(float))},
          {"pair": TupleOf(str, Either(int, str))})


@pytest.mark.parametrize("doc,where", [
    ({"name": "a b", "sizes": [], "by": {}}, "$.name"),
    ({"name": "a", "sizes": [1, True], "by": {}}, "$.sizes[1]"),      # a bool is not an int
    ({"name": "a", "sizes": [], "by": {"x": "1"}}, "$.by.x"),
    ({"name": "a", "sizes": [], "by": {}, "pair": ["x"]}, "$.pair"),
    ({"name": "a", "sizes": [], "by": {}, "pair": ["x", 1.5]}, "$.pair[1]"),
    ({"name": "a", "by": {}}, "missing key 'sizes'"),
    ([], "$: expected an object, got a list"),
])
def test_errors_name_the_place(doc, where):
    with pytest.raises(SchemaError, match=__import__("re").escape(where)):
        check(doc, DOC)


def test_numbers_nulls_and_extra_keys():
    check({"name": "a", "sizes": [1], "by": {"x": 1, "y": None, "z": 2.5}, "new": 0}, DOC)
    with pytest.raises(SchemaError, match="unknown key 'new'"):
        check({"a": 1, "new": 0}, Obj({"a": int}, closed=True))


@pytest.mark.parametrize("raw,msg", [(b"\xff", "not UTF-8"), (b"{", "not valid JSON"),
                                     (b"[" * 100000 + b"]" * 100000, "nested too deeply")])
def test_load_json_refuses_what_is_not_json(raw, msg):
    with pytest.raises(SchemaError, match=msg):
        load_json(raw, ListOf(int), "doc.json")


@dataclass(frozen=True)
class Point:
    x: int
    label: str
    tags: tuple
    weight: Optional[float] = None


def test_dataclass_spec_follows_the_fields():
    spec = dataclass_spec(Point)
    check({"x": 1, "label": "p", "tags": [1, "a"]}, spec)
    check({"x": 1, "label": "p", "tags": [], "weight": None}, spec)
    with pytest.raises(SchemaError, match="missing key 'tags'"):
        check({"x": 1, "label": "p"}, spec)
    with pytest.raises(SchemaError, match=r"\$.weight"):
        check({"x": 1, "label": "p", "tags": [], "weight": "heavy"}, spec)


@pytest.mark.parametrize("rel,ok", [("a/b.json", True), ("../a", False), ("/etc/passwd", False),
                                    ("a/../../b", False), ("a//b", False), ("a\\b", False),
                                    ("", False), ("a\x00b", False), (3, False), ("./a", False)])
def test_safe_relative_paths(rel, ok):
    assert is_safe_relpath(rel) is ok


def test_confine_follows_symlinks(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "in").write_text("x")
    (tmp_path / "other").write_text("y")
    (tmp_path / "root" / "out").symlink_to(tmp_path)
    assert confine(tmp_path / "root", "in") == tmp_path / "root" / "in"
    assert confine(tmp_path / "root", "out/root/in")       # a detour that ends inside is fine
    with pytest.raises(QfuseError, match="symbolic link"):
        confine(tmp_path / "root", "out/other")


def test_safe_component_keeps_plain_names_and_separates_the_rest():
    assert safe_component("rms_fp8.json") == "rms_fp8.json"
    odd = [safe_component(n) for n in ("../x", "..x", "a/b", "a_b" * 100, "a_b" * 101)]
    assert all("/" not in c and not c.startswith(".") and len(c) <= 150 for c in odd)
    assert len(set(odd)) == len(odd)


@dataclass(frozen=True)
class NewStyle:
    count: "int | None" = None


def test_dataclass_spec_reads_both_optional_spellings():
    check({"count": None}, dataclass_spec(NewStyle))
    with pytest.raises(SchemaError, match=r"\$.count"):
        check({"count": "3"}, dataclass_spec(NewStyle))
