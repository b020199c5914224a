"""The Triton lowerings of dequant, pack(order=even_odd), scale(pow2=true), the 3-D
expert-indexed smooth and gather(packed_ids, topk) against the reference, bit for bit:
codes of every byte, edge scales (0, inf, NaN bytes), partial groups, column chunks,
strided inputs, M = 0 and 1, and fused round-trips (quantise then dequantise in one
kernel)."""
import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from qf_triton_testlib import run_rows
from qfuse.backends.reference.numerics import pow2_ceil
from qfuse.backends.triton import TritonConfig, run_pipeline
from qfuse.backends.triton.numerics import qf_pow2_ceil
from test_kernels_helpers import assert_bitwise, edge_rows, pipes, run_both, split

P = pipes("""
def dq_fp8(q: fp8_e4m3fn[M, N], s: f32[1]):
    return dequant(q, s, granularity=per_tensor, dtype=bf16)

def dq_fnuz(q: fp8_e4m3fnuz[M, N], s: f32[M, 1]):
    return dequant(q, s, granularity=per_token)

def dq_i8(q: i8[M, N], s: f32[M, cdiv(N, 128)]):
    return dequant(q, s, granularity=per_1x128, dtype=f16)

def dq_int4(q: int4[M, N], s: f32[M, cdiv(N, 32)]):
    return dequant(q, s, granularity=per_1x32)

def dq_mx(q: fp4_e2m1[M, N], s: e8m0[M, cdiv(N, 32)]):
    return dequant(q, s)

def dq_plain(q: fp4_e2m1[M, N]):
    return dequant(q, dtype=bf16)

def fake_quant_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x64)
    return dequant(round(x, s, fp8_e4m3fn), s, granularity=per_1x64, dtype=bf16), s

def fake_quant_mx(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return dequant(round(x, s, fp4_e2m1), s)

def pk_eo(x: bf16[M, N]):
    s = scale(x, int4, per_1x32, dtype_max=7.0)
    return pack(round(x, s, int4, mode=rne, dtype_max=7.0), order=even_odd), s

def pk_eo_param(q: int4[M, N]):
    return pack(q, order=even_odd)

def sc_pow2(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x128, pow2=true, zero=floor)
    return round(x, s, fp8_e4m3fn), s

def sc_pow2_tok(x: bf16[M, N]):
    s = scale(x, i8, per_token, pow2=true)
    return round(x, s, i8), s

def sm3(x: bf16[M, K, N], s: f32[E, N], ids: i32[M, K]):
    h = smooth(x, s[ids])
    t = scale(h, i8, per_token)
    return round(h, t, i8), t

def gk(x: bf16[M, N], ids: i32[R]):
    g = gather(x, ids, packed_ids=true, topk=4)
    s = scale(g, fp4_e2m1, mx, e8m0=even)
    return shuffle(s), g

def up(w: u8[M, B]):
    return unpack(w, fp4_e2m1), unpack(w, int4)

def up_eo_repack(w: u8[M, B]):
    q = unpack(w, int4, order=even_odd)
    return q, pack(q), pack(unpack(w, int4), order=even_odd)

def dq_packed(w: u8[M, B], s: e8m0[M, cdiv(B * 2, 32)]):
    return dequant(unpack(w, fp4_e2m1), s, dtype=bf16)
""", "dequant_test.qp")


def all_bytes(m, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 256, (m, n), generator=g, dtype=torch.uint8)
    b.view(-1)[: min(256, m * n)] = torch.arange(min(256, m * n), dtype=torch.uint8)
    return b


@pytest.mark.parametrize("m,n", [(5, 100), (1, 1), (0, 9)])
def test_fp8_codes_every_byte(m, n):
    b = all_bytes(max(m, 1) * 60 if m else 0, n)
    m = b.shape[0]
    s = torch.tensor([3.5])
    assert_bitwise(*run_both(P["dq_fp8"], {"q": b.view(torch.float8_e4m3fn), "s": s}))
    st = torch.rand(m, 1)
    if m:
        st[0] = float("inf")
    if m > 1:
        st[1] = 0.0
    assert_bitwise(*run_both(P["dq_fnuz"], {"q": b.view(torch.float8_e4m3fnuz), "s": st}))


@pytest.mark.parametrize("n,chunks", [(300, 1), (128, 1), (300, 2), (7, 1)])
def test_int_groups(n, chunks):
    q = torch.randint(-128, 128, (6, n), dtype=torch.int8)
    s = torch.rand(6, -(-n // 128)) * 4
    tp = P["dq_i8"]
    ref = run_both(tp, {"q": q, "s": s})[1]
    got = run_pipeline(tp, {"q": q, "s": s}, kernels=split(tp),
                       config=TritonConfig(col_chunks=chunks), interpret=True)
    assert_bitwise(got, ref)
    s32 = torch.rand(6, -(-n // 32))
    assert_bitwise(*run_both(P["dq_int4"], {"q": q, "s": s32}))


def test_mx_bytes_and_strided_codes():
    q = all_bytes(12, 140)[:, ::2]                       # a strided view, N = 70
    b = torch.randint(0, 256, (12, 3), dtype=torch.uint8)
    b[0] = torch.tensor([0, 254, 255], dtype=torch.uint8)
    assert_bitwise(*run_both(P["dq_mx"], {"q": q, "s": b}))
    assert_bitwise(*run_both(P["dq_plain"], {"q": all_bytes(2, 16)}))


@pytest.mark.parametrize("m,n", [(9, 200), (1, 64)])
def test_fake_quant_round_trips(m, n):
    x = edge_rows(m, n)
    assert_bitwise(*run_both(P["fake_quant_fp8"], {"x": x}))
    assert_bitwise(*run_both(P["fake_quant_mx"], {"x": x}))


@pytest.mark.parametrize("m,n", [(7, 64), (3, 8), (1, 24)])
def test_pack_even_odd(m, n):
    x = edge_rows(m, n)
    assert_bitwise(*run_both(P["pk_eo"], {"x": x}))
    q = torch.randint(-128, 128, (m, n), dtype=torch.int8)
    assert_bitwise(*run_both(P["pk_eo_param"], {"q": q}))


@pytest.mark.parametrize("m,n", [(9, 300), (1, 128), (0, 5)])
def test_scale_pow2(m, n):
    x = edge_rows(m, n) if m > 1 else torch.randn(m, n).bfloat16()
    for name in ("sc_pow2", "sc_pow2_tok"):
        assert_bitwise(*run_both(P[name], {"x": x}))


def test_smooth_3d_expert_rows():
    x = torch.randn(5, 3, 48).bfloat16()
    s = torch.rand(4, 48) + 0.5
    ids = torch.tensor([[0, 3, 1], [4, -1, 2], [2, 2, 2], [0, 1, 3], [9, 0, 1]],
                       dtype=torch.int32)
    assert_bitwise(*run_both(P["sm3"], {"x": x, "s": s, "ids": ids}))


def test_gather_topk_packed_slots():
    x = edge_rows(8, 100)                                # 2 tokens x 4 slots
    raw = [0, 1 | (3 << 24), 1 | (4 << 24), 2, -1, 0 | (2 << 24), 0xFFFFFF, 1 | (1 << 24)]
    ids = torch.tensor([v - 2 ** 32 if v >= 2 ** 31 else v for v in raw], dtype=torch.int32)
    assert_bitwise(*run_both(P["gk"], {"x": x[:8], "ids": ids}))


@pytest.mark.parametrize("m,b,chunks", [(5, 20, 1), (1, 4, 1), (0, 8, 1), (6, 64, 2)])
def test_unpack(m, b, chunks):
    w = all_bytes(m, b)
    for name in ("up", "up_eo_repack"):
        tp = P[name]
        ref = run_both(tp, {"w": w})[1]
        got = run_pipeline(tp, {"w": w}, kernels=split(tp),
                           config=TritonConfig(col_chunks=chunks), interpret=True)
        assert_bitwise(got, ref)
    s = torch.randint(100, 150, (m, -(-2 * b // 32)), dtype=torch.uint8)
    assert_bitwise(*run_both(P["dq_packed"], {"w": w, "s": s}))


# ---------------------------------------------------------------- device helpers directly
@triton.jit
def k_pow2_ceil(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_pow2_ceil(tl.load(x_ptr + o)))


def test_pow2_ceil_every_binade():
    """qf_pow2_ceil against the reference's pow2_ceil (and math) on every exponent field,
    exact powers, their neighbours, subnormals, 0, inf and NaN."""
    g = np.random.default_rng(7)
    e = np.arange(0, 256, dtype=np.int64)
    mant = np.concatenate([[0, 1, 0x400000, 0x7FFFFF], g.integers(0, 1 << 23, 12)])
    bits = (e[:, None] << 23 | mant[None, :]).reshape(-1).astype(np.uint32)
    x = bits.view(np.float32)
    got = run_rows(k_pow2_ceil, "interp", [x], [torch.float32])[0]
    want = pow2_ceil(torch.from_numpy(x.copy()))
    same = (got.view(torch.int32) == want.view(torch.int32)) | (got.isnan() & want.isnan())
    assert bool(same.all()), x[~same.numpy()][:5]
    finite = np.isfinite(x) & (x > 0) & (x < 2.0 ** 127)
    ref = np.array([2.0 ** np.ceil(np.log2(np.float64(v))) for v in x[finite]])
    assert np.array_equal(got.numpy()[finite].astype(np.float64), ref)
