"""The checker: examples type-check with the right results; each misuse is a located
DSLTypeError; random scale/round compositions either check or raise QfuseError."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfuse.dialect.options import E8M0Mode, Granularity, QuantTarget, Recip, RoundMode, ZeroPolicy
from qfuse.dialect.stages import STAGES
from qfuse.dialect.types import Dim, ScalarType, TensorType
from qfuse.dsl import load_file, load_source
from qfuse.errors import DSLTypeError, QfuseError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _types(pipe) -> list:
    return [str(v.type) for v in pipe.returns]


# ------------------------------------------------------------------------ examples
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.qp")), ids=lambda p: p.name)
def test_examples_check(path):
    pipes = load_file(path)
    assert pipes
    for pipe in pipes.values():
        assert pipe.returns and len(pipe.return_names) == len(pipe.returns)
        for call in pipe.calls:
            stage = STAGES[call.stage]
            assert set(call.operands) == {o.name for o in stage.operands}
            assert {o.name for o in stage.options} <= set(call.options)   # all resolved
            assert len(call.results) == len(call.result_names)
        names = [v.name for c in pipe.calls for v in c.results] + [c.value.name for c in pipe.consts]
        assert len(names) == len(set(names)), names                       # unique SSA names


def test_fp8_examples_results():
    pipes = load_file(EXAMPLES / "fp8.qp")
    assert list(pipes)[:3] == ["per_tensor_fp8", "static_per_tensor_fp8", "per_token_fp8"]
    assert _types(pipes["per_tensor_fp8"]) == ["fp8_e4m3fn[M, N]", "f32[1]"]
    add_norm = pipes["add_rmsnorm_per_token_fp8"]
    assert add_norm.return_names == ["q", "s", "h"]
    assert _types(add_norm) == ["fp8_e4m3fn[M, N]", "f32[M, 1]", "bf16[M, N]"]
    norm = add_norm.calls[0]
    assert norm.result_names == ["out", "residual_out"] and norm.operands["eps"].name == "eps"
    fnuz = pipes["fnuz_per_token_vllm"].calls
    assert fnuz[0].options["dtype_max"] == fnuz[1].options["dtype_max"] == 224.0
    assert _types(pipes["block128x128_fp8"])[1] == "f32[cdiv(M, 128), cdiv(N, 128)]"
    static = pipes["static_per_tensor_fp8"].calls[0]
    assert static.options["granularity"] == "per_tensor" and static.options["recip"] == "mul_rcp"


def test_mxfp4_and_glue_results():
    mx = load_file(EXAMPLES / "mxfp4.qp")["mxfp4"]
    assert _types(mx) == ["u8[M, N/2]", "e8m0[M, cdiv(N, 32)]"]
    assert mx.return_names == ["pack_0", "s"]
    assert [c.stage for c in mx.calls] == ["scale", "round", "pack"]
    assert mx.calls[1].options["granularity"] == "mx"                 # inherited from scale
    glue = load_file(EXAMPLES / "glue.qp")
    scaled = glue["scaled_residual_bf16"]
    assert [c.stage for c in scaled.calls] == ["mul", "add", "cast"]
    assert scaled.calls[0].operands["b"].type == ScalarType(scaled.params[2].value.type.dtype)
    assert _types(glue["reduce_act_mul_group_fp8"]) == ["fp8_e4m3fn[M, N2/2]",
                                                         "f32[M, cdiv(N2/2, 128)]"]


def test_int8_and_kvcache_results():
    moe = load_file(EXAMPLES / "int8.qp")["moe_smoothquant_i8"]
    smooth = moe.calls[0]
    assert smooth.operands["ids"].name == "topk_ids" and _types(moe)[1] == "f32[M, K, 1]"
    assert moe.calls[2].options["mode"] == "rne"
    kv = load_file(EXAMPLES / "kvcache.qp")["kv_per_token_fp8"]
    assert kv.return_names == ["kc", "vc", "ks", "vs"] and len(kv.calls) == 2
    assert kv.calls[0].result_names == ["out", "scales_out"]


def test_symbols_literals_and_defaults():
    (pipe,) = load_source("def f(x: bf16[M, N], w: bf16[N]):\n"
                          "    y = norm(x, w)\n"
                          "    z = y * 0.5 + 1\n"
                          "    return z\n").values()
    assert pipe.symbols() == ["M", "N"]
    assert pipe.params[0].value.type == TensorType(pipe.params[0].value.type.dtype,
                                                  (Dim("M"), Dim("N")))
    assert [c.literal for c in pipe.consts] == [1e-6, 0.5, 1.0]        # norm eps default first
    assert all(isinstance(c.value.type, ScalarType) for c in pipe.consts)
    assert pipe.calls[0].operands["eps"] is pipe.consts[0].value


def test_generated_names_avoid_user_names():
    (pipe,) = load_source("def f(x: f32[M, N]):\n"
                          "    silu_0 = silu(x)\n"
                          "    y = silu(silu(silu_0))\n"
                          "    return y, silu(y)\n").values()
    names = [c.results[0].name for c in pipe.calls]
    assert names == ["silu_0", "silu_1", "y", "silu_2"]
    assert pipe.return_names == ["y", "silu_2"]


def test_round_options_follow_scale_and_explicit_values():
    src = ("def f(x: f32[M, N], s0: f32[1]):\n"
           "    s = scale(x, fp8_e4m3fnuz, per_1x64, dtype_max=224.0)\n"
           "    q = round(x, s, fp8_e4m3fnuz)\n"
           "    p = round(x, s0, i8)\n"
           "    return q, p\n")
    (pipe,) = load_source(src).values()
    scale, round_q, round_p = pipe.calls
    assert (round_q.options["granularity"], round_q.options["dtype_max"]) == ("per_1x64", 224.0)
    assert round_p.options["granularity"] == "per_tensor" and round_p.options["mode"] == "trunc"
    (pipe,) = load_source(src.replace("fp8_e4m3fnuz)", "fp8_e4m3fnuz, dtype_max=224)")).values()
    assert pipe.calls[1].options["dtype_max"] == 224.0                # same value: fine


def test_cache_write_keyword_x_is_the_operand_and_vec_the_option():
    src = ("def f(k: bf16[T, H, D], kc: bf16[B, H, DX, BS, X], kc4: bf16[B, H, DX, BS, 4],\n"
           "      sl: i64[T]):\n"
           "    c = cache_write(x=k, cache=kc, slots=sl)\n"
           "    d = cache_write(k, kc4, sl, vec=4)\n"
           "    return c, d\n")
    (pipe,) = load_source(src).values()
    assert pipe.calls[0].operands["x"].name == "k" and pipe.calls[0].options["vec"] == 8
    assert pipe.calls[1].options["vec"] == 4


# ---------------------------------------------------------------- type errors
H = "def f(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):\n"
R = "    return y\n"
TYPE_ERRORS = [
    (H + "    y = scal(x, i8, per_token)\n" + R, 2, 9, "unknown stage 'scal'"),
    (H + "    y = scale(x, i8, per_token, one)\n" + R, 2, 33, "at most 3 positional arguments"),
    (H + "    y = scale(x, i8, per_token, zeros=one)\n" + R, 2, 33, "unknown option 'zeros'"),
    (H + "    y = scale(x, i8, per_token, zero=nope)\n" + R, 2, 38, "zero='nope' is not one of"),
    (H + "    y = scale(x, i8, per_token, dtype=i8)\n" + R, 2, 33, "'dtype' given twice"),
    (H + "    y = round(x, dtype=i8, granularity=per_token)\n" + R, 2, 9,
     "missing its operand 's'"),
    (H + "    y = round(x, fp8_e4m3fn)\n" + R, 2, 18, "not the option value 'fp8_e4m3fn'"),
    (H + "    y = scale(x)\n" + R, 2, 9, "scale needs a target dtype"),
    (H + "    y = norm(z, w, eps)\n" + R, 2, 14, "undefined name 'z'"),
    (H + "    y = norm(q, w, eps)\n    q = silu(x)\n" + R, 2, 14, "'q' is used before it is assigned"),
    (H + "    x = silu(x)\n    return x\n", 2, 5, "cannot assign to parameter 'x'"),
    (H + "    y = silu(x)\n    y = silu(y)\n" + R, 3, 5, "'y' is already assigned"),
    ("def f(x: bf16[M, N], w: bf16[K]):\n    y = norm(x, w)\n" + R, 2, 17, "(K vs N)"),
    (H + "    y = scale(x, fp4_e2m1, per_token)\n" + R, 2, 28, "fp4_e2m1 needs granularity mx"),
    (H + "    y, h = norm(x, w, eps)\n" + R, 2, 5, "norm returns 1 value (out) but 2 names"),
    ("def f(x: bf16[M, N], r: bf16[M, N], w: bf16[N]):\n    y = norm(x, w, residual=r)\n" + R,
     2, 5, "norm returns 2 values (out, residual_out) but 1 name is assigned"),
    ("def f(k: bf16[T, H, D], kc: fp8_e4m3fn[B, H, DX, BS, X], sc: f32[H, S], sl: i64[T]):\n"
     "    y = cache_write(k, kc, sl, quant=per_token, scales=sc)\n" + R, 2, 5,
     "cache_write returns 2 values"),
    ("def f(x: bf16[M, N], x: bf16[M]):\n    return x\n", 1, 22, "duplicate parameter 'x'"),
    (H + "    return x\n\n" + H + "    return x\n", 4, 5, "duplicate pipeline name 'f'"),
    ("def f(x: bf61[M, N]):\n    return x\n", 1, 10, "unknown dtype 'bf61'"),
    ("def f(x: bf16[M, N], s: f32[M, 1]):\n    y = round(x, s, i8)\n" + R, 2, 18,
     "give granularity= for a static scale"),
    (H + "    s = scale(x, i8, per_token)\n    y = round(x, s, i8, granularity=per_tensor)\n" + R,
     3, 37, "does not match the scale"),
    (H + "    s = scale(x, i8, per_token, dtype_max=100.0)\n    y = round(x, s, i8, dtype_max=120)\n"
     + R, 3, 35, "contradicts the scale's dtype_max=100.0"),
    (H + "    s = scale(x, i8, per_token)\n    y = round(x, s, fp8_e4m3fn)\n" + R, 3, 21,
     "with a scale computed for i8"),
    ("def f(x: bf16[M, N], s: f32[E, N], ids: i32[M, K]):\n    y = silu(s[ids])\n" + R, 2, 14,
     "only allowed as smooth's scale"),
    (H + "    y = silu(x)\n", 1, 5, "pipeline 'f' has no 'return'"),
    (H + "    return x\n    y = silu(x)\n", 3, 5, "after 'return'"),
    (H + "    return 1.0\n", 2, 12, "return values must be tensors"),
    (H + "    return eps\n", 2, 12, "'eps' is a scalar"),
    ("def f(x: bf16[M, N], r: bf16[M, N], w: bf16[N]):\n    y = silu(norm(x, w, residual=r))\n"
     + R, 2, 14, "assign them to names first"),
    (H + "    y = norm(x, w, x)\n" + R, 2, 20, "takes a scalar"),
    ("def f(x: bf16[M, N], k: i32 = 1.5):\n    return x\n", 1, 31, "must be an integer"),
    ("def f(x: bf16[M, N], k: i32 = 3000000000):\n    return x\n", 1, 31, "does not fit i32"),
    ("def f(x: bf16[M, N] = 1):\n    return x\n", 1, 23, "only scalar parameters take a default"),
    ("def f(x: bf16[M, N], k: fp8_e4m3fn):\n    return x\n", 1, 25, "cannot be fp8_e4m3fn"),
    ("def f(x: bf16[M, 0]):\n    return x\n", 1, 18, "dims must be positive"),
    (H + "    y = scale(x, i8, per_token, dtype_max=eps)\n" + R, 2, 43, "compile-time"),
    (H + "    y = scale(x, i8, per_token, dtype_max=silu(x))\n" + R, 2, 43, "takes a literal"),
    (H + "    y = silu(1.0)\n" + R, 2, 14, "must be a tensor, got a number"),
    ("def f(x: bf16[M, N], b: bf16[K]):\n    y = x + b\n" + R, 2, 13, "cannot broadcast"),
    (H + "    y = scale(x, int4, mx)\n" + R, 2, 18, "mx granularity quantises to fp4_e2m1 or fp8"),
    (H + "    y = scale(x, i8, per_token, dtype_max=0)\n" + R, 2, 43, "dtype_max must be positive"),
    (H + "    y = round(x, scale(x, fp8_e4m3fn, per_token), fp8_e4m3fn, mode=trunc)\n" + R, 2, 68,
     "mode=trunc applies to i8/int4 only"),
    (H + "    y = round(x, scale(x, i8, per_token), i8, mode=half_up)\n" + R, 2, 52,
     "mode=half_up applies to fp4_e2m1 only (AITER's MoE-sort MXFP4 rounding); i8 rounds to "
     "nearest even or by trunc"),
    (H + "    y = smooth(x, w[w], ids=w)\n" + R, 2, 19, "'ids' given twice"),
    (H + "    y = True\n" + R, 2, 9, "cannot assign a boolean"),
    (H + "    a, b = x\n    return a\n", 2, 5, "cannot unpack one value into 2 names"),
]


@pytest.mark.parametrize("src,line,col,message", TYPE_ERRORS, ids=[m for *_, m in TYPE_ERRORS])
def test_type_errors_are_located(src, line, col, message, located):
    with pytest.raises(DSLTypeError) as info:
        load_source(src, file="bad.qp")
    located(info.value, "bad.qp", line, col, message)


def test_unknown_stage_suggests_and_unknown_dtype_lists():
    with pytest.raises(DSLTypeError) as info:
        load_source(H + "    y = scal(x, i8, per_token)\n" + R)
    assert "did you mean 'scale'?" in str(info.value)
    with pytest.raises(DSLTypeError) as info:
        load_source("def f(x: bf61[M, N]):\n    return x\n")
    assert "bf16, f16, f32" in info.value.message and "did you mean 'bf16'?" in str(info.value)


# --------------------------------------------------------------- property test
_SHAPES = st.lists(st.sampled_from(["M", "N", "K", "32", "64", "96", "128", "7"]),
                   min_size=1, max_size=3)
_FLOAT_DTYPES = st.sampled_from(["bf16", "f16", "f32", "i8", "fp8_e4m3fn"])
_MAYBE_NUMBER = st.one_of(st.none(), st.sampled_from(["0", "-1.0", "6.0", "224.0", "448",
                                                      "true", "per_token"]))


def _kw(name: str, value) -> str:
    return "" if value is None else f", {name}={value}"


@st.composite
def scale_round_programs(draw):
    dims = draw(_SHAPES)
    x_type = f"{draw(_FLOAT_DTYPES)}[{', '.join(dims)}]"
    target = draw(st.sampled_from(tuple(QuantTarget) + ("int8", "fp4", "bf16")))
    gran = draw(st.sampled_from(tuple(Granularity)))
    scale_opts = (_kw("zero", draw(st.one_of(st.none(), st.sampled_from(tuple(ZeroPolicy)))))
                  + _kw("e8m0", draw(st.one_of(st.none(), st.sampled_from(tuple(E8M0Mode)))))
                  + _kw("dtype_max", draw(_MAYBE_NUMBER)))
    round_target = draw(st.sampled_from([target, target, "i8"]))
    round_opts = (_kw("granularity", draw(st.one_of(st.none(), st.sampled_from(tuple(Granularity)))))
                  + _kw("mode", draw(st.one_of(st.none(), st.sampled_from(tuple(RoundMode)))))
                  + _kw("recip", draw(st.one_of(st.none(), st.sampled_from(tuple(Recip)))))
                  + _kw("sat", draw(st.one_of(st.none(), st.sampled_from(["true", "False"]))))
                  + _kw("dtype_max", draw(_MAYBE_NUMBER)))
    static = draw(st.booleans())
    scale_line = ("" if static else f"    s = scale(x, {target}, {gran}{scale_opts})\n")
    s_param = ", s: f32[1]" if static else ""
    packed = draw(st.booleans())
    result = "pack(q)" if packed else "q"
    returns = f"{result}, s" if not static else result
    return (f"def p(x: {x_type}{s_param}):\n{scale_line}"
            f"    q = round(x, s, {round_target}{round_opts})\n    return {returns}\n")


@settings(max_examples=300, deadline=None)
@given(scale_round_programs())
def test_random_scale_round_compositions_check_or_raise_qfuse_errors(src):
    try:
        pipes = load_source(src, file="random.qp")
    except QfuseError as err:
        text = str(err)
        assert "Traceback" not in text and text.startswith("random.qp:")
        return
    pipe = pipes["p"]
    round_call = next(c for c in pipe.calls if c.stage == "round")
    assert round_call.results[0].type.dtype.name == round_call.options["dtype"]
    assert set(round_call.options) == {o.name for o in STAGES["round"].options}
