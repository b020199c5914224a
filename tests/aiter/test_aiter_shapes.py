"""AITER's own test parametrisations (op_tests/triton_tests/quant/test_quant.py,
test_fused_fp8_quant.py, op_tests/test_fused_qk_norm_mrope_cache_quant.py): their shapes,
input dtypes and data recipes (``randn / 10`` activations, fp32 ``ones`` norm weights, a
``randn`` static scale that may be negative), the sizes a CPU run affords (AITER's 7168 /
8192-wide and 131072-row cases are left to the GPU suite), on both backends against the
oracles of the other tests. The other functions' AITER shapes are in their own files
(moe-sort, indexer, fused MXFP4)."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_oracles import group_fp8, rms
from aiter_testlib import agree, backends, on, same_bits
from qfuse.aiter.ops.triton.quant import fused_fp8_quant as F
from qfuse.aiter.ops.triton.quant import quant as T

QUANT = (torch.int8, torch.float8_e4m3fn)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def cases(shapes):
    """Each shape with one of AITER's input dtypes in turn (their cross product is the GPU
    suite's), and both quantised dtypes."""
    return [(m, n, DTYPES[i % 3], q) for i, (m, n) in enumerate(shapes) for q in QUANT]


@backends
@pytest.mark.parametrize("m,n,dt,qdt", cases([(1, 32), (32, 32), (2, 16), (10, 128),
                                              (193, 75), (1024, 128)]))
def test_static_per_tensor_quant_aiter_shapes(backend, m, n, dt, qdt):
    g = torch.Generator().manual_seed(20)
    x = torch.randn(m, n, generator=g).to(dt)
    scale = torch.randn(1, generator=g)                  # AITER's: may be negative
    qx = torch.empty(m, n, dtype=qdt)
    on(backend, T.static_per_tensor_quant_fp8_i8, qx, x, scale)
    same_bits(qx, O.quant_rows(x.float(), scale, qdt, "rcp"), "static")


@backends
@pytest.mark.parametrize("m,n,dt,qdt", cases([(1, 32), (32, 32), (2, 16), (10, 128),
                                              (93, 75)]))
def test_dynamic_per_tensor_quant_aiter_shapes(backend, m, n, dt, qdt):
    x = torch.randn(m, n, generator=torch.Generator().manual_seed(20)).to(dt)
    qx, so = torch.empty(m, n, dtype=qdt), torch.zeros(1)
    on(backend, T.dynamic_per_tensor_quant_fp8_i8, qx, x, so)
    wy, ws = O.per_tensor(x, qdt, "zero", "rcp")
    same_bits(qx, wy, "codes")
    same_bits(so, ws, "scale")


@backends
@pytest.mark.parametrize("m,n,dt,qdt", cases([(256, 13), (2, 16), (1, 32), (32, 32),
                                              (192, 96), (48, 96), (400, 400)]))
def test_dynamic_per_token_quant_aiter_shapes(backend, m, n, dt, qdt):
    x = torch.rand(m, n, generator=torch.Generator().manual_seed(20)).to(dt)   # AITER: rand
    qx, st = torch.empty(m, n, dtype=qdt), torch.zeros(m)
    on(backend, T.dynamic_per_token_quant_fp8_i8, qx, x, st)
    wy, ws = O.per_token(x, qdt, "zero", "rcp")
    same_bits(qx, wy, "codes")
    same_bits(st, ws.view(-1), "scales")


def rms_data(m, n1, n2, dt, seed=0):
    """AITER's generate_fused_rms_quant_data: activations randn / 10, fp32 ones weights."""
    g = torch.Generator().manual_seed(seed)
    x1 = (torch.randn(m, n1, generator=g) / 10).to(dt)
    x2 = (torch.randn(m, n2, generator=g) / 10).to(dt)
    res = (torch.randn(m, n1, generator=g) / 10).to(dt)
    return x1, torch.ones(n1), x2, torch.ones(n2), res


@backends
@pytest.mark.parametrize("m", [1, 32, 256])
@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_fused_rms_fp8_group_and_static_aiter_shapes(backend, m, dt):
    """AITER's (N1, N2) = (128, 128) cases of both fused RMSNorm FP8 functions, group 128,
    residual, second input and the unquantised output, as its tests call them."""
    x1, w1, x2, w2, res = rms_data(m, 128, 128, dt)
    (q, s), y1, y2, hr = on(backend, F.fused_rms_fp8_group_quant, x1, w1, 1e-6, inp2=x2,
                            inp2_weight=w2, inp2_epsilon=1e-6, group_size=128,
                            dtype_quant=torch.float8_e4m3fn, res1=res,
                            output_unquantized_inp1=True)
    h = x1.float() + res.float()
    y = rms(h, w1, 1e-6)
    wq, ws = group_fp8(y, 128)
    agree({"q": q, "s": s, "y1": y1, "y2": y2, "h": hr},
          {"q": wq, "s": ws, "y1": y.to(dt), "y2": rms(x2, w2, 1e-6).to(dt), "h": h.to(dt)})
    scale = torch.randn(1, generator=torch.Generator().manual_seed(m))
    qs, *_ = on(backend, F.fused_rms_fp8_per_tensor_static_quant, x1, w1, 1e-6, scale,
                inp2=x2, inp2_weight=w2, inp2_epsilon=1e-6,
                dtype_quant=torch.float8_e4m3fn, res1=res, output_unquantized_inp1=True)
    agree({"q": qs}, {"q": O.codes(y * (1.0 / scale), torch.float8_e4m3fn)})


@backends
@pytest.mark.parametrize("m", [1, 32, 256])
def test_fused_flatten_fp8_group_quant_aiter_shapes(backend, m):
    """AITER's x: randn((N1, M, N2)) / 10 transposed to [M, N1, N2], N1 = 16, N2 = 128."""
    x = (torch.randn(16, m, 128, generator=torch.Generator().manual_seed(m)) / 10) \
        .to(torch.bfloat16).transpose(0, 1)
    q, s = on(backend, F.fused_flatten_fp8_group_quant, x, 128)
    wq, ws = group_fp8(x.reshape(m, 16 * 128).float(), 128)
    agree({"q": q, "s": s}, {"q": wq, "s": ws}, k=0)


@backends
@pytest.mark.parametrize("m,spk,act", [(1, 1, "silu"), (32, 4, "gelu"), (256, 14, "silu"),
                                       (1, 14, "gelu")])
def test_fused_reduce_act_mul_fp8_group_quant_aiter_shapes(backend, m, spk, act):
    """AITER's (N1, N2) = (256, 256): x [M, 512] (or fp32 [SPK, M, 512]) / 10, x2 [SPK, M,
    256] summed into y2."""
    g = torch.Generator().manual_seed(spk)
    if spk == 1:
        x, x2 = (torch.randn(m, 512, generator=g) / 10).to(torch.bfloat16), None
    else:
        x = torch.randn(spk, m, 512, generator=g) / 10
        x2 = torch.randn(spk, m, 256, generator=g) / 10
    (q, s), y2 = on(backend, F.fused_reduce_act_mul_fp8_group_quant, x, act, x2,
                    group_size=128, dtype=torch.bfloat16)
    r = x.float()
    if spk > 1:
        acc = r[0]
        for i in range(1, spk):
            acc = acc + r[i]
        r = acc
    f = torch.nn.functional.silu if act == "silu" else torch.nn.functional.gelu
    wq, ws = group_fp8(f(r[:, :256]) * r[:, 256:], 128)
    agree({"q": q, "s": s}, {"q": wq, "s": ws})
    if spk > 1:
        acc = x2[0]
        for i in range(1, spk):
            acc = acc + x2[i]
        agree({"y2": y2}, {"y2": acc.bfloat16()})


@backends
@pytest.mark.parametrize("d,sections,interleaved,fp8", [(64, [12, 10, 10], True, False),
                                                        (128, [24, 20, 20], False, True),
                                                        (256, [48, 40, 40], True, True)])
def test_fused_qk_norm_mrope_aiter_shapes(backend, d, sections, interleaved, fp8):
    """AITER's head sizes and mrope_section pairs (64: [12, 10, 10], 128: [24, 20, 20],
    256: [48, 40, 40]), its data (randn qkv, weights and cos_sin), shuffle layout with
    x = 16 / element size, page 16, return_kv; few tokens and heads."""
    from test_aiter_cache_mrope import run_and_check
    t, hq, hk, p = 3, 2, 1, 50
    g = torch.Generator().manual_seed(d)
    qkv = torch.randn(t, (hq + 2 * hk) * d, generator=g).bfloat16()
    qw, kw = torch.randn(d, generator=g).bfloat16(), torch.randn(d, generator=g).bfloat16()
    cs = torch.randn(p, d, generator=g).bfloat16()
    pos = torch.randint(0, p, (3, t), generator=g)
    run_and_check(backend, qkv, qw, kw, cs, pos, torch.tensor([3, 20, 31]), hq=hq, hk=hk,
                  d=d, sections=sections, neox=True, interleaved=interleaved, fp8=fp8,
                  shuffle=True, nb=2, ks=0.03, vs=0.05)
