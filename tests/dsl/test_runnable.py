"""Programs the checker used to accept but a backend could not run are now refused at
the stage that cannot run, with a located message (rules in the stage catalog, so the
MLIR verifiers apply them too); each case names the backend failure it replaces."""
from __future__ import annotations

import pytest

from qfuse.dsl import load_source
from qfuse.errors import DSLTypeError

H = "def f(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):\n"
R = "    return y\n"
KV = "def f(k: bf16[T, H, D], c: {cache}, sc: f32[1], sl: i64[T]):\n"

UNRUNNABLE = [
    # KeyError 'dtype' in the shape rule
    (H + "    y = cast(x)\n" + R, 2, 9, "cast needs option dtype (bf16, f16, f32)"),
    # Triton: "expected an fp32 register" (fp32 glue on integer / code registers)
    ("def f(x: i32[M, N]):\n    y = x + x\n" + R, 2, 9, "a must be a bf16, f16 or f32 tensor"),
    ("def f(x: bf16[M, N], b: u8[M, N]):\n    y = x * b\n" + R, 2, 13, "b must be a bf16"),
    ("def f(x: fp8_e4m3fn[M, N]):\n    y = x + 1.0\n" + R, 2, 9, "got fp8_e4m3fn[M, N]"),
    ("def f(x: bf16[M, N], k: i32 = 3):\n    y = x * k\n" + R, 2, 13, "f32 scalar, got i32"),
    ("def f(x: bf16[M, N], k: i32 = 3):\n    y = norm(x, eps=k)\n" + R, 2, 21, "eps must be a bf16"),
    # Triton: pointer/block shape errors for a kernel without a row dim
    ("def f(x: bf16[N], w: bf16[N]):\n    y = norm(x, w, 1e-6)\n" + R, 2, 14,
     "norm works row by row and its result would be 1-D"),
    ("def f(x: bf16[N]):\n    y = scale(x, fp8_e4m3fn, per_token)\n" + R, 2, 15,
     "scale works row by row and its input would be 1-D"),
    ("def f(x: bf16[N], w: bf16[N]):\n    y = x + w\n" + R, 2, 9, "add works row by row"),
    ("def f(x: f32[S, N]):\n    y = reduce(x)\n" + R, 2, 16, "reduce works row by row"),
    ("def f(x: bf16[M], i: i32[R]):\n    y = gather(x, i)\n" + R, 2, 16, "gather works row by row"),
    # Triton: static_assert "DTYPE_MAX above the format max"
    (H + "    s = scale(x, fp8_e4m3fn, per_token, dtype_max=449.0)\n    y = round(x, s, fp8_e4m3fn)\n"
     + R, 2, 51, "dtype_max=449 is above the largest fp8_e4m3fn value (448)"),
    (H + "    s = scale(x, fp8_e4m3fnuz, per_token)\n    y = round(x, s, fp8_e4m3fnuz, dtype_max=241)\n"
     + R, 3, 45, "above the largest fp8_e4m3fnuz value (240)"),
    (KV.format(cache="fp8_e4m3fn[B, BS, H, D]") +
     "    y = cache_write(k, c, sl, layout=flash, quant=static, scales=sc, dtype_max=500.0)\n" + R,
     2, 80, "above the largest fp8_e4m3fn value"),
    # Triton: NameError in the tile kernel (a derived dim it cannot size)
    ("def f(x: bf16[M, A, B]):\n    y = scale(flatten(x), fp8_e4m3fn, per_128x128)\n" + R, 2, 15,
     "per_128x128 tiles need x's dims to be pipeline dims"),
    ("def f(x: bf16[M, N]):\n    y = scale(act_mul(x), fp8_e4m3fn, per_128x128)\n" + R, 2, 15,
     "got f32[M, N/2]"),
    # Triton: OverflowError packing the option as f32; Triton: uint8 overflow of the pad
    (H + "    y = scale(x, fp8_e4m3fn, per_token, zero=floor, amax_floor=1e300)\n" + R, 2, 64,
     "amax_floor=1e+300 does not fit in f32"),
    (H + "    y = scale(x, fp8_e4m3fn, per_token, zero=floor, amax_floor=0.0)\n" + R, 2, 64,
     "amax_floor=0.0 is out of range"),
    (H + "    s = scale(x, fp4_e2m1, mx)\n    y = shuffle(s, pad=256)\n" + R, 3, 24,
     "pad=256 is out of range (0..255)"),
    (KV.format(cache="bf16[B, H, DX, BS, X]") + "    y = cache_write(k, c, sl, vec=0)\n" + R,
     2, 35, "vec=0 is out of range"),
    # Triton read the first of several per-tensor scales; the reference refused them
    ("def f(x: bf16[M, N], s: f32[Q]):\n    y = round(x, s, fp8_e4m3fn, granularity=per_tensor)\n"
     + R, 2, 18, "scale for per_tensor fp8_e4m3fn must be f32[1], got f32[Q]"),
    ("def f(x: bf16[M, N], s: f32[7]):\n    y = round(x, s, i8, granularity=per_tensor)\n" + R,
     2, 18, "must be f32[1], got f32[7]"),
    # a cache updated in place read elsewhere: the backends saw different contents
    (KV.format(cache="bf16[B, H, D, BS]") + "    c2 = cache_write(k, c, sl, layout=value)\n"
     "    y = reduce(c)\n" + R, 3, 16,
     "'c' is updated in place by the cache_write at line 2; it cannot also be read here"),
    (KV.format(cache="bf16[B, H, D, BS]") + "    y = cache_write(k, c, sl, layout=value)\n"
     "    z = cache_write(k, c, sl, layout=value)\n    return y, z\n", 3, 24,
     "it cannot also be read here"),
    (KV.format(cache="bf16[B, H, D, BS]") + "    y = cache_write(k, c, sl, layout=value)\n"
     "    return y, c\n", 3, 15, "it cannot also be returned"),
    # Triton: "lead rank mismatch" loading a static cache scale that is not one value
    (KV.format(cache="fp8_e4m3fn[B, BS, H, D]").replace("sc: f32[1]", "sc: f32[M, 1]") +
     "    y = cache_write(k, c, sl, layout=flash, quant=static, scales=sc)\n" + R, 2, 66,
     "quant=static takes one scale, scales f32[1], got f32[M, 1]"),
]


@pytest.mark.parametrize("src,line,col,message", UNRUNNABLE, ids=[m[:40] for *_, m in UNRUNNABLE])
def test_unrunnable_programs_are_refused_where_they_go_wrong(src, line, col, message, located):
    with pytest.raises(DSLTypeError) as info:
        load_source(src, file="bad.qp")
    located(info.value, "bad.qp", line, col, message)


@pytest.mark.parametrize("body", [
    "    y = x * 0.5 + w\n",                                   # float glue, [N] broadcast
    "    s = scale(x, i8, per_token, dtype_max=1000.0)\n    y = round(x, s, i8)\n",
    "    s = scale(x, int4, per_1x32, dtype_max=7.5)\n    y = round(x, s, int4, sat=false)\n",
    "    s = scale(x, fp4_e2m1, mx, dtype_max=7.0)\n    y = round(x, s, fp4_e2m1)\n",
    "    s = scale(x, fp8_e4m3fn, per_128x128)\n    y = round(x, s, fp8_e4m3fn)\n",
    "    s = scale(x, fp4_e2m1, mx)\n    y = shuffle(s, pad=255)\n",
])
def test_runnable_neighbours_still_check(body):
    """What the rules leave alone runs on both backends (integer and E2M1 targets clamp
    their codes, so a dtype_max above their max is meaningful)."""
    assert load_source(H + body + R)["f"].returns
