"""The reference's new quantisation stages against independent oracles: ``dequant``
(codes + scales -> float), ``pack(order=even_odd)``, ``scale(pow2=true)``, the 3-D
expert-indexed ``smooth`` and ``gather(packed_ids, topk)`` (docs/semantics.md)."""
import math

import pytest
import torch

from qfuse.backends.reference import run_pipeline
from qfuse.dsl import load_source
from qfuse.errors import QfuseError

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]

P = load_source("""
def dq_fp8(q: fp8_e4m3fn[M, N], s: f32[1]):
    return dequant(q, s, granularity=per_tensor)

def dq_fnuz_tok(q: fp8_e4m3fnuz[M, N], s: f32[M, 1]):
    return dequant(q, s, granularity=per_token, dtype=bf16)

def dq_i8_g64(q: i8[M, N], s: f32[M, cdiv(N, 64)]):
    return dequant(q, s, granularity=per_1x64)

def dq_int4_g32(q: int4[M, N], s: f32[M, cdiv(N, 32)]):
    return dequant(q, s, granularity=per_1x32, dtype=f16)

def dq_mx(q: fp4_e2m1[M, N], s: e8m0[M, cdiv(N, 32)]):
    return dequant(q, s)

def dq_plain(q: fp4_e2m1[M, N]):
    return dequant(q)

def pk_eo(q: int4[M, N]):
    return pack(q, order=even_odd)

def sc_pow2(x: bf16[M, N]):
    return scale(x, fp8_e4m3fn, per_1x128, pow2=true, zero=floor)

def sm3(x: bf16[M, K, N], s: f32[E, N], ids: i32[M, K]):
    return smooth(x, s[ids])

def gk(x: f32[M, N], ids: i32[R]):
    return gather(x, ids, packed_ids=true, topk=3)

def up_fp4(w: u8[M, B]):
    return unpack(w, fp4_e2m1)

def up_eo(w: u8[M, B]):
    return unpack(w, int4, order=even_odd)

def dq_packed(w: u8[M, B], s: e8m0[M, cdiv(B * 2, 32)]):
    return dequant(unpack(w, fp4_e2m1), s)
""", "ref_dequant_test.qp")


def run(name, **inputs):
    out = run_pipeline(P[name], inputs)
    return next(iter(out.values()))


def same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    g, w = got.float(), want.float()
    ok = (g.view(torch.int32) == w.view(torch.int32)) | (g.isnan() & w.isnan())
    assert bool(ok.all()), (got[~ok][:5], want[~ok][:5])


def all_bytes(m, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 256, (m, n), generator=g, dtype=torch.uint8)
    b.view(-1)[:256] = torch.arange(min(256, m * n), dtype=torch.uint8)
    return b


@pytest.mark.parametrize("m,n", [(3, 100), (1, 1), (0, 7), (9, 64)])
def test_fp8_per_tensor_and_fnuz_per_token(m, n):
    b = all_bytes(m, n)
    s = torch.tensor([0.37])
    want = b.view(torch.float8_e4m3fn).float() * s          # torch's fp8 decode is exact
    same(run("dq_fp8", q=b.view(torch.float8_e4m3fn), s=s), want)
    st = torch.rand(m, 1) * 10
    st[:1] = float("inf")
    want = (b.view(torch.float8_e4m3fnuz).float() * st).to(torch.bfloat16)
    same(run("dq_fnuz_tok", q=b.view(torch.float8_e4m3fnuz), s=st), want)


@pytest.mark.parametrize("n", [64, 100, 1])
def test_int_groups_partial_last_group(n):
    m = 4
    q = torch.randint(-128, 128, (m, n), dtype=torch.int8)
    s = torch.rand(m, math.ceil(n / 64)) + 0.5
    want = q.float() * s.repeat_interleave(64, -1)[:, :n]
    same(run("dq_i8_g64", q=q, s=s), want)
    s32 = torch.rand(m, math.ceil(n / 32))
    # int4 codes: the low nibble's two's-complement value, whatever else the byte holds
    nib = [((v & 0xF) ^ 8) - 8 for v in q.view(-1).tolist()]
    v4 = torch.tensor(nib, dtype=torch.float32).view(m, n)
    want = (v4 * s32.repeat_interleave(32, -1)[:, :n]).to(torch.float16)
    same(run("dq_int4_g32", q=q, s=s32), want)


def test_mx_e8m0_bytes_and_plain_e2m1():
    m, n = 5, 70
    q = torch.randint(0, 256, (m, n), dtype=torch.uint8)
    b = torch.randint(0, 256, (m, 3), dtype=torch.uint8)
    b[0] = torch.tensor([0, 254, 255], dtype=torch.uint8)
    vals = torch.tensor([E2M1[c & 7] * (-1 if c & 8 else 1) for c in q.view(-1).tolist()])
    neg_zero = torch.tensor([(c & 0xF) == 8 for c in q.view(-1).tolist()])
    vals = torch.where(neg_zero, torch.tensor(-0.0), vals).view(m, n)
    f = torch.tensor([float("nan") if v == 255 else 2.0 ** (v - 127) for v in b.view(-1).tolist()],
                     dtype=torch.float64).float().view(m, 3)
    want = vals * f.repeat_interleave(32, -1)[:, :n]
    same(run("dq_mx", q=q, s=b), want)
    same(run("dq_plain", q=q), vals)


def test_pack_even_odd_is_rearranged_linear_words():
    q = torch.randint(-8, 8, (3, 24), dtype=torch.int8)
    got = run("pk_eo", q=q).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    for r in range(3):
        for w in range(3):
            word = q[r, 8 * w: 8 * w + 8].tolist()
            order = [0, 2, 4, 6, 1, 3, 5, 7]
            want = sum((word[src] & 0xF) << (4 * p) for p, src in enumerate(order))
            assert int(got[r, w]) == want


def test_pack_even_odd_needs_words_of_8():
    q = torch.zeros(2, 12, dtype=torch.int8)
    with pytest.raises(QfuseError, match="multiple of 8"):
        run("pk_eo", q=q)


def test_scale_pow2_rounds_up_to_a_power_of_two():
    x = torch.randn(4, 300).bfloat16()
    x[0] = 0
    x[1, :128] = 448.0                       # exactly 1.0: stays
    x[2, :5] = 1e-30
    got = run("sc_pow2", x=x)
    xp = torch.nn.functional.pad(x.float(), (0, 84)).view(4, 3, 128)
    s = xp.abs().amax(-1).clamp(min=1e-10) / 448.0
    want = torch.tensor([2.0 ** math.ceil(math.log2(v)) for v in s.view(-1).tolist()]).view(4, 3)
    same(got, want)
    assert got[1, 0].item() == 1.0


def test_smooth_3d_one_row_per_slot():
    x = torch.randn(3, 2, 40).bfloat16()
    s = torch.rand(5, 40)
    ids = torch.tensor([[0, 4], [5, -1], [2, 2]], dtype=torch.int32)
    want = torch.zeros(3, 2, 40)
    for m in range(3):
        for k in range(2):
            e = int(ids[m, k])
            if 0 <= e < 5:
                want[m, k] = x[m, k].float() * s[e]
    same(run("sm3", x=x, s=s, ids=ids), want)


def test_gather_topk_slot_bounds():
    x = torch.randn(9, 16)                               # 3 tokens x 3 slots
    raw = [0, 1 | (2 << 24), 2 | (1 << 24), 2 | (3 << 24), -1, 3, 0xFFFFFF, (1 << 24) * 127]
    ids = torch.tensor([v - 2 ** 32 if v >= 2 ** 31 else v for v in raw], dtype=torch.int32)
    got = run("gk", x=x, ids=ids)
    for i, v in enumerate(ids.tolist()):
        t, k = v & 0xFFFFFF, v >> 24
        row = t * 3 + k
        want = x[row] if 0 <= k < 3 and row < 9 else torch.zeros(16)
        assert torch.equal(got[i], want), i


def test_unpack_inverts_pack_in_both_orders():
    w = all_bytes(3, 20)
    got = run("up_fp4", w=w)
    assert got.dtype == torch.uint8 and got.shape == (3, 40)
    for j in range(20):
        assert torch.equal(got[:, 2 * j], w[:, j] & 0xF) and torch.equal(got[:, 2 * j + 1], w[:, j] >> 4)
    q = run("up_eo", w=w)                          # int4 values, even_odd words
    assert q.dtype == torch.int8 and q.shape == (3, 40)
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    for r in range(3):
        for wd in range(5):
            word = int.from_bytes(bytes(w[r, 4 * wd: 4 * wd + 4].tolist()), "little")
            for p, src in enumerate(order):
                nib = (word >> (4 * p)) & 0xF
                assert int(q[r, 8 * wd + src]) == ((nib ^ 8) - 8)
    assert torch.equal(run("pk_eo", q=q), w)       # pack(order=even_odd) undoes it


def test_dequant_of_packed_mxfp4():
    w = all_bytes(4, 40)
    b = torch.randint(90, 160, (4, 3), dtype=torch.uint8)
    codes = torch.stack((w & 0xF, w >> 4), -1).reshape(4, 80)
    want = run("dq_mx", q=codes, s=b)
    same(run("dq_packed", w=w, s=b), want)


@pytest.mark.parametrize("src,match", [
    ("def p(q: i8[M, N], s: f32[M, 1]):\n    return dequant(q, s)\n", "granularity"),
    ("def p(q: bf16[M, N]):\n    return dequant(q)\n", "codes"),
    ("def p(q: i8[M, N], s: f32[M, 2]):\n    return dequant(q, s, granularity=per_token)\n",
     "must be"),
    ("def p(q: fp4_e2m1[M, N], s: f32[M, 1]):\n    return dequant(q, s, granularity=per_token)\n",
     "mx"),
    ("def p(x: bf16[M, N]):\n    return scale(x, fp4_e2m1, mx, pow2=true)\n", "pow2"),
    ("def p(x: bf16[M, N], i: i32[R]):\n    return gather(x, i, topk=2)\n", "packed_ids"),
    ("def p(w: u8[M, B]):\n    return unpack(w, i8)\n", "4-bit"),
    ("def p(w: bf16[M, B]):\n    return unpack(w, int4)\n", "u8"),
    ("def p(w: u8[M, 6]):\n    return unpack(w, int4, order=even_odd)\n", "multiple of 4"),
])
def test_bad_uses_are_located_errors(src, match):
    with pytest.raises(QfuseError, match=match):
        load_source(src, "bad.qp")
