"""qfuse.aiter.ops.quant: each function on both backends (the reference, and Triton's
interpreter) against an independent oracle of the AITER entry point it mirrors, on
random data and AITER's awkward rows (zero, huge, subnormal, ties, NaN, inf)."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import backends, edge_rows, on, same_bits
import qfuse.aiter as aiter
from qfuse.aiter import AiterArgumentError, dtypes
from qfuse.aiter.ops import quant as Q

FP8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz)
TARGETS = (torch.int8,) + FP8


@backends
@pytest.mark.parametrize("qdt", TARGETS)
def test_pertoken_quant(backend, qdt):
    x = edge_rows(5, 96)
    y, s = on(backend, Q.pertoken_quant, x, quant_dtype=qdt)
    wy, ws = O.per_token(x, qdt, "one", "div")
    same_bits(y, wy, "codes")
    same_bits(s, ws, "scale")
    assert s.shape == (x.shape[0], 1) and s.dtype == torch.float32


@backends
def test_pertoken_quant_smooth_dtypemax_and_3d(backend):
    x = edge_rows(4, 64, torch.float16).view(2, 5, 64)
    xs = torch.randn(1, 64)                       # the guide's (1, N) smooth scale
    y, s = on(backend, Q.pertoken_quant, x, x_scale=xs, quant_dtype=dtypes.i8,
              dtypeMax=100.0, scale_dtype=torch.float16)
    wy, ws = O.per_token(x.view(-1, 64), torch.int8, "one", "div", dmax=100.0,
                         x_scale=xs.view(64))
    same_bits(y, wy.view(2, 5, 64), "codes")
    same_bits(s, ws.view(2, 5, 1).to(torch.float16), "scale")


@backends
@pytest.mark.parametrize("qdt", (torch.int8, torch.float8_e4m3fn))
def test_pertoken_quant_given_scale(backend, qdt):
    x = (torch.randn(6, 40) * 300).to(torch.float32)     # overflows: saturates
    scale = torch.rand(6, 1) + 0.5
    y, s = on(backend, Q.pertoken_quant, x, scale=scale, quant_dtype=qdt)
    same_bits(y, O.quant_rows(x, scale, qdt, "div"), "codes")
    assert s is scale or torch.equal(s, scale)
    # one value for all rows (per tensor), with the smooth scale
    xs = torch.randn(40)
    y1, _ = on(backend, Q.pertoken_quant, x, scale=torch.tensor(2.5), x_scale=xs,
               quant_dtype=qdt)
    same_bits(y1, O.quant_rows(x * xs, torch.tensor(2.5), qdt, "div"), "per-tensor scale")


@backends
def test_fp8_ties_round_to_even(backend):
    """A static scale of 1 puts values on e4m3 midpoints: ties go to the even code."""
    mids = torch.tensor([[1.0625, 1.1875, -1.0625, 17.0, 0.0029296875, 464.0, 1e9, -1e9]])
    y, _ = on(backend, Q.pertoken_quant, mids, scale=torch.ones(1, 1),
              quant_dtype=torch.float8_e4m3fn)
    want = torch.tensor([[1.0, 1.25, -1.0, 16.0, 0.00390625 * 0.75, 448.0, 448.0, -448.0]])
    same_bits(y, want.to(torch.float8_e4m3fn), "ties")


@backends
@pytest.mark.parametrize("qdt", TARGETS)
def test_per_tensor_quant(backend, qdt):
    x = edge_rows(5, 80, nan=False)
    y, s = on(backend, Q.per_tensor_quant, x, quant_dtype=qdt)
    wy, ws = O.per_tensor(x, qdt, "zero", "div")
    same_bits(y, wy, "codes")
    same_bits(s, ws, "scale")


@backends
def test_per_tensor_quant_zero_tensor_and_static(backend):
    """AITER's reference gives NaN codes for an all-zero tensor; qfuse scale 0, codes 0."""
    z = torch.zeros(3, 64, dtype=torch.bfloat16)
    y, s = on(backend, Q.per_tensor_quant, z, quant_dtype=torch.float8_e4m3fnuz)
    assert s.item() == 0 and bool((y.view(torch.uint8) == 0).all())
    x = torch.randn(4, 64) * 100
    y, s = on(backend, Q.per_tensor_quant, x, scale=torch.tensor([0.25]),
              quant_dtype=torch.int8, scale_dtype=torch.bfloat16)
    same_bits(y, O.quant_rows(x, torch.tensor(0.25), torch.int8, "div"), "static")
    assert s.dtype == torch.bfloat16 and s.shape == (1,)


@backends
@pytest.mark.parametrize("mode,name", [(0, "floor"), (1, "roundup"), (2, "even"), (3, "ceil")])
def test_per_1x32_f4_quant_round_modes(backend, mode, name):
    x = edge_rows(4, 64)
    y, s = on(backend, Q.per_1x32_f4_quant, x, round_mode=mode)
    wy, ws = O.mxfp4(x, name)
    assert y.dtype == dtypes.fp4x2 and s.dtype == dtypes.fp8_e8m0
    same_bits(y.view(torch.uint8), wy, "packed codes")
    same_bits(s.view(torch.uint8), ws, "scale bytes")


@backends
def test_per_1x32_f4_quant_shuffle_and_pack_dim(backend):
    x = torch.randn(40, 96, dtype=torch.bfloat16)
    y, s = on(backend, Q.per_1x32_f4_quant, x, shuffle=True)
    wy, ws = O.mxfp4(x, "roundup")
    same_bits(y.view(torch.uint8), wy, "codes")
    same_bits(s.view(torch.uint8), O.shuffle(ws), "shuffled scale")
    k = torch.randn(64, 24, dtype=torch.bfloat16)
    y0, s0 = on(backend, Q.per_1x32_f4_quant, k, pack_dim=0)
    wy0, ws0 = O.mxfp4(k.t().contiguous(), "roundup")
    assert y0.shape == (32, 24) and s0.shape == (2, 24)
    same_bits(y0.view(torch.uint8), wy0.t().contiguous(), "RHS codes")
    same_bits(s0.view(torch.uint8), ws0.t().contiguous(), "RHS scale")


@backends
def test_per_block_and_128x128(backend):
    x = edge_rows(4, 256, nan=False)
    y, s = on(backend, Q.get_torch_quant(aiter.QuantType.per_1x128), x,
              quant_dtype=torch.float8_e4m3fn)
    wy, ws = O.per_group(x, torch.float8_e4m3fn, 128, "one", "div")
    same_bits(y, wy, "1x128 codes")
    same_bits(s, ws, "1x128 scale")
    x2 = torch.randn(130, 200)
    y2, s2 = on(backend, Q.get_torch_quant(aiter.QuantType.per_128x128), x2,
                quant_dtype=torch.int8)
    assert s2.shape == (2, 2)
    tile = x2[:128, 128:]
    ws2 = tile.abs().amax() / 127
    assert s2[0, 1].item() == ws2.item()
    same_bits(y2[:128, 128:], O.quant_rows(tile, ws2, torch.int8, "div"), "tile codes")


@backends
def test_per_1x32_i4_quant(backend):
    w = torch.randn(2, 6, 64)
    w[0, 1] = 0.0
    q, s = on(backend, Q.per_1x32_i4_quant, w)
    g = w.view(2, 6, 2, 32)
    sc = g.abs().amax(-1, keepdim=True).clamp(min=1e-6) / 7.0
    wq = (g / sc).round().clamp(-7, 7).to(torch.int8).view(2, 6, 64)
    same_bits(q, wq, "int4 values")
    same_bits(s, sc.squeeze(-1).transpose(-1, -2).contiguous().to(torch.bfloat16), "scale")


# ------------------------------------------------------------------ HIP kernels
@backends
@pytest.mark.parametrize("qdt", (torch.int8, torch.float8_e4m3fnuz))
def test_per_tensor_quant_hip(backend, qdt):
    x = edge_rows(3, 48, nan=False)
    y, s = on(backend, Q.per_tensor_quant_hip, x, quant_dtype=qdt)
    wy, ws = O.per_tensor(x, qdt, "zero", "rcp")
    same_bits(y, wy, "codes")
    same_bits(s, ws, "scale")
    st = torch.tensor([0.5])
    y2, s2 = on(backend, Q.per_tensor_quant_hip, x, st, quant_dtype=qdt)
    same_bits(y2, O.quant_rows(x.float(), st, qdt, "rcp"), "static")
    assert s2.data_ptr() == st.data_ptr()


@backends
@pytest.mark.parametrize("n,zero", [(96, "zero"), (64, "floor")])
def test_per_token_quant_hip(backend, n, zero):
    x = edge_rows(3, n)
    y, s = on(backend, Q.per_token_quant_hip, x, quant_dtype=torch.float8_e4m3fn)
    wy, ws = O.per_token(x, torch.float8_e4m3fn, zero, "rcp")
    same_bits(y, wy, "codes")
    same_bits(s, ws, "scale")


@backends
@pytest.mark.parametrize("transpose", (False, True))
def test_per_group_quant_hip(backend, transpose):
    x = edge_rows(3, 256, nan=False)
    y, s = on(backend, Q.get_hip_quant(aiter.QuantType.per_1x128), x,
              quant_dtype=torch.int8, transpose_scale=transpose)
    wy, ws = O.per_group(x, torch.int8, 128, "floor", "rcp")
    same_bits(y, wy, "codes")
    assert s.shape == ws.shape
    same_bits(s, ws.t().contiguous().view(ws.shape) if transpose else ws, "scale")


@backends
def test_per_1x32_mx_quant_hip(backend):
    x = edge_rows(3, 64)
    y, s = on(backend, Q.get_hip_quant(aiter.QuantType.per_1x32), x)
    wy, ws = O.mxfp4(x, "roundup")
    same_bits(y.view(torch.uint8), wy, "codes")
    same_bits(s.view(torch.uint8), ws, "scale")
    # MXFP8: e8m0 RoundUp with 448, codes x / 2^k
    y8, s8 = on(backend, Q.per_1x32_mx_quant_hip, x, quant_dtype=torch.float8_e4m3fn,
                scale_type=dtypes.fp8_e8m0)
    b = O.e8m0(x.float().view(-1, 2, 32).abs().amax(-1), "roundup", 448.0, 8)
    sc = torch.pow(2.0, b.float() - 127).where(b != 255, torch.tensor(float("nan")))
    want = O.codes(x.float().view(-1, 2, 32) / sc[..., None], torch.float8_e4m3fn)
    same_bits(y8, want.view(x.shape), "mxfp8 codes")
    same_bits(s8.view(torch.uint8), b.view(-1, 2), "mxfp8 scale")


# ------------------------------------------------------------------ SmoothQuant
@backends
def test_smooth_per_token_scaled_quant_2d(backend):
    x = edge_rows(4, 64)
    xs = torch.randn(1, 64)
    out = torch.empty(x.shape, dtype=torch.int8)
    scales = torch.empty(x.shape[0], 1)
    on(backend, Q.smooth_per_token_scaled_quant, out, x, scales, xs)
    wy, ws = O.per_token(x, torch.int8, "floor", "rcp", x_scale=xs.view(-1))
    same_bits(out, wy, "codes")
    same_bits(scales, ws, "scales")


@backends
def test_smooth_per_token_scaled_quant_moe_expand_and_skip(backend):
    m, k, n, e = 3, 2, 32, 4
    x = torch.randn(m, n, dtype=torch.bfloat16)
    xs = torch.randn(e, n)
    ids = torch.tensor([[0, 3], [2, -1], [1, 1]], dtype=torch.int32)
    out = torch.full((m, k, n), 5, dtype=torch.int8)
    scales = torch.full((m, k), 9.0)
    on(backend, Q.smooth_per_token_scaled_quant, out, x.view(m, 1, n).expand(-1, k, -1),
       scales, xs, ids)
    for i in range(m):
        for j in range(k):
            if ids[i, j] < 0:          # skipped: keeps its contents, as in AITER
                assert bool((out[i, j] == 5).all()) and scales[i, j].item() == 9.0
                continue
            wy, ws = O.per_token(x[i:i + 1], torch.int8, "floor", "rcp",
                                 x_scale=xs[ids[i, j]])
            same_bits(out[i, j], wy[0], f"row {i},{j}")
            same_bits(scales[i, j], ws[0, 0], f"scale {i},{j}")


@backends
def test_moe_smoothquant_fwd(backend):
    m, k, n, e = 4, 3, 64, 5
    x = edge_rows(m - 4, n, nan=False)[:m]
    xs = torch.rand(e, n) + 0.5
    ids = torch.randint(0, e, (m, k), dtype=torch.int32)
    ids[0, 0] = e + 3                  # out of range: a zero row
    out = torch.empty(m, k, n, dtype=torch.int8)
    ys = torch.empty(m, k, 1)
    on(backend, Q.moe_smoothquant_fwd, out, x, xs, ids, ys)
    for i in range(m):
        for j in range(k):
            sc = xs[ids[i, j]] if ids[i, j] < e else torch.zeros(n)
            wy, ws = O.per_token(x[i:i + 1], torch.int8, "zero", "div", x_scale=sc)
            same_bits(out[i, j], wy[0], f"row {i},{j}")
            same_bits(ys[i, j], ws[0], f"scale {i},{j}")


# ------------------------------------------------------------------ Triton
@backends
@pytest.mark.parametrize("qdt", (torch.int8, torch.float8_e4m3fn))
def test_triton_per_tensor_and_per_token(backend, qdt):
    from qfuse.aiter.ops.triton.quant import quant as T
    x = edge_rows(3, 75, nan=False)            # AITER's odd width (193, 75)
    qx, so = torch.empty(x.shape, dtype=qdt), torch.zeros(1)
    on(backend, T.dynamic_per_tensor_quant_fp8_i8, qx, x, so)
    wy, ws = O.per_tensor(x, qdt, "zero", "rcp")
    same_bits(qx, wy, "dynamic per tensor")
    same_bits(so, ws, "its scale")
    on(backend, T.static_per_tensor_quant_fp8_i8, qx, x, torch.tensor([0.01]))
    same_bits(qx, O.quant_rows(x.float(), torch.tensor(0.01), qdt, "rcp"), "static")
    st = torch.empty(x.shape[0])
    on(backend, T.dynamic_per_token_quant_fp8_i8, qx, x, st)
    wy, ws = O.per_token(x, qdt, "zero", "rcp")
    same_bits(qx, wy, "per token")
    same_bits(st, ws.view(-1), "per-token scale")


@backends
def test_triton_dynamic_mxfp4_quant_layouts(backend):
    from qfuse.aiter.ops.triton.quant.quant import dynamic_mxfp4_quant
    from qfuse.aiter.utility import fp4_utils
    x = edge_rows(3, 64)
    y, s = on(backend, dynamic_mxfp4_quant, x)
    wy, ws = O.mxfp4(x, "even")
    assert y.dtype == torch.uint8 and s.stride() == (1, x.shape[0])
    same_bits(y, wy, "codes")
    same_bits(s.contiguous(), ws, "scale")
    y2, s2 = on(backend, fp4_utils.dynamic_mxfp4_quant, x, shuffle=True)
    same_bits(y2.view(torch.uint8), wy, "asm codes")
    same_bits(s2.view(torch.uint8), O.shuffle(ws, 0), "asm shuffled scale")
    y3, s3 = on(backend, Q.get_triton_quant(aiter.QuantType.per_1x32), x)
    same_bits(s3.view(torch.uint8), ws, "asm scale")


@backends
@pytest.mark.parametrize("n", [28, 68, 200, 4])
def test_triton_dynamic_mxfp4_quant_partial_block(backend, n):
    """AITER's Triton dynamic_mxfp4_quant asserts only (N // 2) % 2 == 0: the last 1x32
    block may be partial (scaled by its real elements), the scale [M, ceil(N/32)]."""
    from qfuse.aiter.ops.triton.quant.quant import dynamic_mxfp4_quant
    x = edge_rows(3, n)
    y, s = on(backend, dynamic_mxfp4_quant, x)
    wy, ws = O.mxfp4(x, "even")
    assert s.shape == (x.shape[0], -(-n // 32)) and s.stride() == (1, x.shape[0])
    same_bits(y, wy, "codes")
    same_bits(s.contiguous(), ws, "scale")
    with pytest.raises(AiterArgumentError, match=r"positive multiple of 4 \(AITER's"):
        dynamic_mxfp4_quant(torch.randn(2, n + 2))


# ------------------------------------------------------------------ dispatch and errors
def test_dispatch_tables_cover_the_guide():
    qt = aiter.QuantType
    x = torch.randn(2, 128)
    for get in (Q.get_torch_quant, Q.get_hip_quant, Q.get_triton_quant):
        y, s = get(qt.No)(x)
        assert y is x and s is None
    assert Q.get_torch_quant(qt.per_Token) is Q.pertoken_quant
    assert Q.get_hip_quant(qt.per_Tensor) is Q.per_tensor_quant_hip
    assert Q.get_triton_quant(qt.per_Token) is Q.per_token_quant_triton
    for get, q in ((Q.get_hip_quant, qt.per_128x128), (Q.get_torch_quant, qt.per_256x128)):
        with pytest.raises(NotImplementedError, match="unsupported quant type"):
            get(q)(x)
    assert [m.value for m in qt] == list(range(8))


@pytest.mark.parametrize("call,match", [
    (lambda: Q.pertoken_quant(torch.randn(2, 8), quant_dtype=torch.float16), "quant_dtype"),
    (lambda: Q.pertoken_quant(torch.randn(2, 8).to(torch.int32)), "x must be"),
    (lambda: Q.pertoken_quant(torch.randn(2, 8), x_scale=torch.randn(7)), r"x_scale .* \[8\]"),
    (lambda: Q.pertoken_quant(torch.randn(2, 8), scale=torch.ones(3)), "one per row"),
    (lambda: Q.per_tensor_quant(torch.randn(2, 8), quant_dtype=torch.float8_e4m3fnuz,
                                dtypeMax=300.0), "dtypeMax=300"),
    (lambda: Q.per_1x32_f4_quant(torch.randn(2, 40)), "multiple of 32"),
    (lambda: Q.per_1x32_f4_quant(torch.randn(2, 64), round_mode=7), "round_mode"),
    (lambda: Q.per_token_quant_hip(torch.randn(2, 8), torch.ones(2, 1)), "static per token"),
    (lambda: Q.per_group_quant_hip(torch.randn(2, 96), group_size=48), "group_size"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unsupported_variants_say_why():
    with pytest.raises(NotImplementedError, match="a given scale"):
        Q.per_1x32_f4_quant(torch.randn(2, 64), scale=torch.ones(2, 2))
    with pytest.raises(NotImplementedError, match="scale_layout_m32k4"):
        Q.per_group_quant_hip(torch.randn(2, 64), scale_layout_m32k4=True)
