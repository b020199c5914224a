"""Optional parameters and flags: one definition, a checked program per variant."""
from __future__ import annotations

import pytest

from qfuse.dsl import load_source
from qfuse.dsl.limits import MAX_VARIANT_PARAMS
from qfuse.errors import DSLTypeError

SRC = """
def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6, res: bf16[M, N] = None,
            out_bf16: bool = false, x_scale: f32[N] = None):
    h0 = smooth(x, x_scale) if x_scale is not None else x
    y, h = norm(h0, w, eps, residual=res)
    s = scale(y, fp8_e4m3fn, per_token, zero=zero if out_bf16 else one)
    q = round(y, s, fp8_e4m3fn, sat=out_bf16)
    return q, s, h, (cast(y, bf16) if out_bf16 else None)
"""


def test_every_variant_is_a_checked_program():
    tp = load_source(SRC)["rms_fp8"]
    fam = tp.family
    assert [p.kind for p in fam.params] == ["value", "value", "value", "optional", "flag",
                                            "optional"]
    assert fam.return_names == ["q", "s", "h", "cast_0"]
    assert len(fam.variants) == 8 and fam.principal == (True, False, True)
    assert tp is fam.variants[fam.principal] and tp.name == "rms_fp8"
    for key, v in fam.variants.items():
        res, flag, xs = key
        assert v.family is fam
        if key != fam.principal:
            assert v.name == "rms_fp8__v" + "".join("1" if b else "0" for b in key)
        names = [p.value.name for p in v.params]
        assert names == ["x", "w", "eps"] + ["res"] * res + ["x_scale"] * xs   # no flag
        assert [c.stage for c in v.calls] == ["smooth"] * xs + ["norm", "scale", "round"] + \
            ["cast"] * flag
        assert v.return_names == ["q", "s"] + ["h"] * res + ["cast_0"] * flag
        scale, rnd = v.calls[-2 - flag], v.calls[-1 - flag]
        assert scale.options["zero"] == ("zero" if flag else "one")   # an option per variant
        assert rnd.options["sat"] is flag                                # a flag as a bool option


def test_a_definition_without_optionals_has_no_family():
    tp = load_source("def f(x: bf16[M, N]):\n    return x\n")["f"]
    assert tp.family is None


def test_optional_scalars_and_none_operands():
    """An optional scalar that is None leaves the operand out (norm's eps takes its
    default); None written as an optional operand does the same."""
    src = ("def f(x: bf16[M, N], eps: f32 = None):\n"
           "    return norm(x, None, eps), norm(x, eps=eps)\n")
    fam = load_source(src)["f"].family
    absent = fam.variants[(False,)]
    assert [p.value.name for p in absent.params] == ["x"]
    assert all(c.operands["w"] is None for c in absent.calls)
    assert all(c.operands["eps"].name.startswith("const") for c in absent.calls)


H = "def f(x: bf16[M, N], w: bf16[N], s: f32[N] = None, r: bf16[M, N] = None, fl: bool = false):\n"
BAD = [
    (H + "    return smooth(x, s)\n", 2, 22, "smooth needs its operand s, and it is None here "
     "('s' is None)"),
    (H + "    return x + r\n", 2, 16, "add needs its operand b, and it is None here"),
    (H + "    y = norm(x, w, residual=r)\n    return y + x\n", 2, 5,
     "norm returns 2 values (out, residual_out) but 1 name is assigned"),
    (H + "    y, h = norm(x, w, residual=r)\n    return h + x\n", 3, 12,
     "add needs its operand a, and it is None here (norm has no residual_out here: 'r' is None)"),
    (H + "    return smooth(x, fl)\n", 2, 22, "'fl' is a flag (true or false), not an operand"),
    (H + "    return x if fl is None else w\n", 2, 17, "'fl' is a flag (true or false), never None"),
    (H + "    return x, fl\n", 2, 15, "return values must be tensors; 'fl' is the flag"),
    (H + "    return r\n", 2, 5, "every value this pipeline returns is None here"),
    (H + "    r = x\n    return r\n", 2, 5, "cannot assign to parameter 'r'"),
    (H + "    return x if zz else w\n", 2, 17, "undefined name 'zz'"),
    ("def f(x: bf16[M, N]):\n    return x, None\n", 2, 15, "this return value is always None"),
    ("def f(x: bf16[M, N], fl: bool = 1):\n    return x\n", 1, 33,
     "the default of the flag 'fl: bool' must be true or false"),
]


@pytest.mark.parametrize("src,line,col,message", BAD, ids=[m[:50] for *_, m in BAD])
def test_misuse_is_located_and_names_the_variant(src, line, col, message, located):
    with pytest.raises(DSLTypeError) as info:
        load_source(src, file="bad.qp")
    located(info.value, "bad.qp", line, col, message)


def test_the_hint_names_the_variant():
    with pytest.raises(DSLTypeError) as info:
        load_source(H + "    return smooth(x, s) if fl else x\n")
    assert info.value.hint.endswith("in the variant where s is None, r is given, fl=true")


def test_the_number_of_variant_parameters_is_bounded(located):
    opts = ", ".join(f"o{i}: f32[N] = None" for i in range(MAX_VARIANT_PARAMS + 1))
    with pytest.raises(DSLTypeError) as info:
        load_source(f"def f(x: bf16[M, N], {opts}):\n    return x\n", file="bad.qp")
    col = 1 + len(f"def f(x: bf16[M, N], ") + len(", ".join(
        f"o{i}: f32[N] = None" for i in range(MAX_VARIANT_PARAMS))) + 2
    located(info.value, "bad.qp", 1, col, f"more than {MAX_VARIANT_PARAMS} optional parameters")


def test_nested_conditions_and_python_spellings():
    src = ("def f(x: bf16[M, N], a: bf16[M, N] = None, fl: bool = True):\n"
           "    y = x if not fl else (a if a is not None else x * 2.0)\n"
           "    return y, (None if fl else x)\n")
    fam = load_source(src)["f"].family
    assert fam.principal == (True, True)
    assert fam.variants[(True, True)].returns[0].name == "a"
    assert [c.stage for c in fam.variants[(False, True)].calls] == ["mul"]
    assert fam.variants[(False, False)].returns[0].name == "x"
    assert fam.return_names == ["y", "x"]          # the name where the output exists
