"""Option enums: members are their attribute strings, and the facts that live on them."""
import json
import math

import pytest

from qfuse.dialect.options import (CacheLayout, E8M0Mode, Granularity, OptionEnum, QuantTarget)
from qfuse.dialect.stages import STAGES, StageError, resolve_options
from qfuse.dialect.types import Dim, TensorType, dtype


def test_a_member_is_its_attribute_string():
    """Members compare, hash, print and serialise as the strings they replace, so the IR
    text, program JSON, kernel comments and messages do not change."""
    g = Granularity.MX
    assert g == "mx" and "mx" == g and hash(g) == hash("mx")
    assert {"mx": 1}[g] == 1 and {g: 1}["mx"] == 1
    assert str(g) == "mx" and f"{g}" == "mx" and f"{g:>4}" == "  mx"
    assert json.dumps({"g": g}) == '{"g": "mx"}'
    assert Granularity("mx") is g and Granularity(g) is g
    assert ", ".join(E8M0Mode) == "roundup, even, rne_legacy, floor, ceil"


def test_every_choice_option_takes_its_values_from_an_enum():
    for st in STAGES.values():
        for spec in st.options:
            if spec.type in ("enum", "dtype"):
                assert issubclass(spec.enum, OptionEnum), (st.name, spec.name)
                assert spec.choices == tuple(spec.enum), (st.name, spec.name)
                assert spec.default is None or spec.default in spec.choices


def _args(st):
    x = TensorType(dtype("bf16"), (Dim("M"), Dim("N")))
    cache = TensorType(dtype("fp8_e4m3fn"), (Dim(4), Dim(2), Dim(8), Dim(16), Dim(16)))
    return {"x": x, "cache": cache} if st.name == "cache_write" else {"x": x}


REQUIRED = {"cast": {"dtype": "bf16"}, "scale": {"dtype": "int8", "granularity": "per_token"},
            "round": {"dtype": "fp8_e4m3fn", "granularity": "mx"},
            "dequant": {"codes": "int4"}, "unpack": {"dtype": "int4"}}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_resolved_options_are_members(name):
    """Given as strings (a DSL word, an alias, an attribute read back), defaults filled in
    from context or not: every resolved enum or dtype option is a member."""
    st = STAGES[name]
    opts = resolve_options(st, _args(st), dict(REQUIRED.get(name, {})))
    for spec in st.options:
        if spec.type in ("enum", "dtype"):
            assert type(opts[spec.name]) is spec.enum, (name, spec.name, opts[spec.name])


def test_alias_and_bad_values():
    st = STAGES["scale"]
    opts = resolve_options(st, _args(st), {"dtype": "int8", "granularity": "per_token"})
    assert opts["dtype"] is QuantTarget.I8 and opts["zero"] == "one"
    with pytest.raises(StageError, match="granularity='per_row' is not one of per_tensor"):
        resolve_options(st, _args(st), {"dtype": "i8", "granularity": "per_row"})
    with pytest.raises(StageError, match="granularity=3 is not one of"):
        resolve_options(st, _args(st), {"dtype": "i8", "granularity": 3})


def test_group_sizes():
    assert {g.value: g.group_size for g in Granularity if g.group_size} == \
        {"per_1x32": 32, "per_1x64": 64, "per_1x128": 128, "mx": 32}
    assert [g.value for g in Granularity if g.whole_rows] == ["per_tensor", "per_token"]


def test_e8m0_constants_follow_the_formats():
    """``(max_pos, emax)`` of an mx target: its largest value, and the exponent of the
    largest power of two not above it."""
    mx = [t for t in QuantTarget if t.e8m0]
    assert [t.value for t in mx] == ["fp8_e4m3fn", "fp8_e4m3fnuz", "fp4_e2m1"]
    for t in mx:
        max_pos, emax = t.e8m0
        assert max_pos == t.dtype.max and emax == math.floor(math.log2(max_pos)), t


def test_int_bounds():
    assert QuantTarget.I8.int_bounds(127.0, True) == (-127, 127)
    assert QuantTarget.I8.int_bounds(300.0, True) == (-128, 127)
    assert QuantTarget.I8.int_bounds(100.5, True) == (-100, 100)
    assert QuantTarget.INT4.int_bounds(7.0, False) == (-8, 7)
    assert [t.value for t in QuantTarget if t.is_int] == ["i8", "int4"]


def test_cache_layout_axes():
    """Each layout names every extent once, H and the block size always, D or D/X."""
    for layout in CacheLayout:
        ax = layout.axes
        assert sorted(ax.values()) == list(range(1, layout.rank)), layout
        assert "H" in ax and ("BS" in ax) != ("BSX" in ax) and ("D" in ax) != ("DX" in ax)
        assert ("X" in ax) == ("BSX" in ax or "DX" in ax)
