"""qfuse.aiter.ops.triton.quant.fused_mxfp4_quant on both backends against an fp32 oracle
of AITER's Triton kernels (E8M0 even, E2M1 RNE), every optional input and output, the
shuffled and padded scale layouts; outputs meet the agreement rule (norm sums)."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_oracles import rms
from aiter_testlib import agree, backends, edge_rows, on
from qfuse.aiter.ops.triton.quant import fused_mxfp4_quant as F


def padded(s, pad=127):
    m, g = s.shape
    out = torch.full((-(-m // 256) * 256, -(-g // 8) * 8), pad, dtype=torch.uint8)
    out[:m, :g] = s
    return out


@backends
@pytest.mark.parametrize("res,two,out1,shuffle", [(False, False, False, False),
                                                  (True, True, True, True)])
def test_fused_rms_mxfp4_quant(backend, res, two, out1, shuffle):
    x = edge_rows(3, 64, nan=False)
    w = (torch.rand(64) + 0.5).to(torch.bfloat16)
    r = torch.randn(x.shape, dtype=x.dtype) if res else None
    x2 = torch.randn(x.shape[0], 40, dtype=x.dtype) if two else None
    w2 = torch.rand(40, dtype=x.dtype) if two else None
    (q, s), y1, y2, hr = on(backend, F.fused_rms_mxfp4_quant, x, w, 1e-6, x2, w2, 1e-5,
                            res1=r, shuffle=shuffle, output_unquantized_inp1=out1)
    h = x.float() + (r.float() if res else 0)
    y = rms(h, w, 1e-6)
    wq, ws = O.mxfp4(y, "even")
    got, want = {"q": q, "s": s}, {"q": wq, "s": O.shuffle(ws, 127) if shuffle else ws}
    if res:
        got["h"], want["h"] = hr, h.to(x.dtype)
    if out1:
        got["y1"], want["y1"] = y1, y.to(x.dtype)
    if two:
        got["y2"], want["y2"] = y2, rms(x2, w2, 1e-5).to(x.dtype)
    assert q.dtype == torch.uint8 and s.dtype == torch.uint8
    agree(got, want)


@backends
def test_fused_rms_mxfp4_quant_scale_padding_only(backend):
    x = torch.randn(5, 96, dtype=torch.bfloat16)
    w = torch.ones(96, dtype=torch.bfloat16)
    (q, s), *_ = on(backend, F.fused_rms_mxfp4_quant, x, w, 1e-6, scale_shuffle_padding=True)
    _, ws = O.mxfp4(rms(x, w, 1e-6), "even")
    agree({"s": s}, {"s": padded(ws)})


@backends
def test_fused_flatten_mxfp4_quant(backend):
    x = torch.randn(3, 2, 64, dtype=torch.bfloat16)
    q, s = on(backend, F.fused_flatten_mxfp4_quant, x)
    wq, ws = O.mxfp4(x.reshape(3, 128), "even")
    assert s.stride() == (1, 3)
    agree({"q": q, "s": s.contiguous()}, {"q": wq, "s": ws}, k=0)


@backends
@pytest.mark.parametrize("shuffle,mode", [(False, "even"), (True, "roundup")])
def test_fused_reduce_act_mul_and_mxfp4_quant(backend, shuffle, mode):
    x = torch.randn(2, 3, 128)
    x2 = torch.randn(2, 3, 16)
    (q, s), y2 = on(backend, F.fused_reduce_act_mul_and_mxfp4_quant, x, "gelu_tanh", x2,
                    scaling_mode=mode, shuffle=shuffle)
    r = x[0] + x[1]
    h = torch.nn.functional.gelu(r[:, :64], approximate="tanh") * r[:, 64:]
    wq, ws = O.mxfp4(h, mode)
    agree({"q": q, "s": s, "y2": y2}, {"q": wq, "s": O.shuffle(ws, 127) if shuffle else ws,
                                       "y2": (x2[0] + x2[1]).bfloat16()})


@backends
def test_fused_reduce_rms_mxfp4_quant(backend):
    x = torch.randn(3, 2, 64)
    w = torch.rand(64) + 0.5
    x3 = torch.randn(3, 2, 8)
    r = torch.randn(2, 64)
    (q, s), y1, y2, hr, y3 = on(backend, F.fused_reduce_rms_mxfp4_quant, x, w, 1e-6, x3=x3,
                                res1=r, dtype=torch.float16, scale_shuffle_padding=True)
    h = ((x[0] + x[1]) + x[2]) + r
    wq, ws = O.mxfp4(rms(h, w, 1e-6), "even")
    assert y1 is None and y2 is None
    agree({"q": q, "s": s, "h": hr, "y3": y3},
          {"q": wq, "s": padded(ws), "h": h.half(), "y3": ((x3[0] + x3[1]) + x3[2]).half()})


@backends
@pytest.mark.parametrize("m,n,res,shuffle", [(4, 200, True, True), (33, 200, False, False),
                                             (1, 28, True, False), (2, 6, False, True)])
def test_fused_rms_mxfp4_quant_partial_block(backend, m, n, res, shuffle):
    """A last dim that is not a multiple of 32 (AITER's test uses N1 = 200, its kernel
    takes any even N1): the partial last block is scaled by its real elements, its codes
    fill [M, N1/2], the scale [M, ceil(N1/32)] (shuffled: the padded e8m0_shuffle
    layout)."""
    x = edge_rows(max(m - 4, 1), n, nan=False)[:m]
    w = (torch.rand(n) + 0.5).to(torch.bfloat16)
    r = torch.randn(x.shape, dtype=x.dtype) if res else None
    (q, s), _, _, hr = on(backend, F.fused_rms_mxfp4_quant, x, w, 1e-6, res1=r,
                          shuffle=shuffle)
    h = x.float() + (r.float() if res else 0)
    wq, ws = O.mxfp4(rms(h, w, 1e-6), "even")
    assert q.shape == (m, n // 2) and ws.shape == (m, -(-n // 32))
    agree({"q": q, "s": s}, {"q": wq, "s": O.shuffle(ws, 127) if shuffle else ws})


@backends
@pytest.mark.parametrize("m,n_half,spk,shuffle", [(1, 4, 1, False), (1, 28, 4, True),
                                                  (128, 68, 1, False), (3, 200, 2, True)])
def test_fused_reduce_act_mul_and_mxfp4_quant_partial_block(backend, m, n_half, spk,
                                                            shuffle):
    """AITER's test shapes with a partial (or a single short) MX block: N1 = 4, 28, 68
    activation outputs (x [M, 2 * N1], or split-K [SPK, M, 2 * N1])."""
    g = torch.Generator().manual_seed(n_half)
    shape = (spk, m, 2 * n_half) if spk > 1 else (m, 2 * n_half)
    x = torch.randn(shape, generator=g) / 10
    x2 = torch.randn(spk, m, 8, generator=g) if spk > 1 else None
    (q, s), _ = on(backend, F.fused_reduce_act_mul_and_mxfp4_quant, x, "silu", x2,
                   shuffle=shuffle)
    r = x if spk == 1 else x.sum(0) if spk == 2 else ((x[0] + x[1]) + x[2]) + x[3]
    h = torch.nn.functional.silu(r[:, :n_half]) * r[:, n_half:]
    wq, ws = O.mxfp4(h, "even")
    assert q.shape == (m, n_half // 2)
    agree({"q": q, "s": s}, {"q": wq, "s": O.shuffle(ws, 127) if shuffle else ws})


@backends
def test_partial_block_reduce_rms_and_flatten(backend):
    x = torch.randn(2, 5, 100)
    w = torch.rand(100) + 0.5
    (q, s), *_ = on(backend, F.fused_reduce_rms_mxfp4_quant, x, w, 1e-6,
                    scale_shuffle_padding=True)
    wq, ws = O.mxfp4(rms(x[0] + x[1], w, 1e-6), "even")
    agree({"q": q, "s": s}, {"q": wq, "s": padded(ws)})
    xf = torch.randn(3, 2, 50, dtype=torch.bfloat16)
    q, s = on(backend, F.fused_flatten_mxfp4_quant, xf)
    wq, ws = O.mxfp4(xf.reshape(3, 100), "even")
    assert s.shape == (3, 4) and s.stride() == (1, 3)
    agree({"q": q, "s": s.contiguous()}, {"q": wq, "s": ws}, k=0)


@pytest.mark.parametrize("call,match", [
    (lambda: F.fused_rms_mxfp4_quant(torch.randn(2, 47), torch.ones(47), 1e-6),
     "last dim of x1 must be even"),
    (lambda: F.fused_reduce_act_mul_and_mxfp4_quant(torch.randn(2, 58), "silu"),
     "last dim of x must be a multiple of 4"),
    (lambda: F.fused_flatten_mxfp4_quant(torch.randn(2, 3, 5)),
     r"last dim of x \(flattened\) must be even"),
    (lambda: F.fused_rms_mxfp4_quant(torch.randn(2, 64), torch.ones(64), 1e-6,
                                     inargs="cuda"), "inargs"),
    (lambda: F.fused_reduce_act_mul_and_mxfp4_quant(torch.randn(2, 64), "silu",
                                                    scaling_mode="odd"), "scaling_mode"),
    (lambda: F.fused_reduce_rms_mxfp4_quant(torch.randn(2, 2, 64), torch.ones(64), 1e-6,
                                            x3=torch.randn(3, 2, 8)), r"x3 must be \[2, 2"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gluon_is_refused():
    with pytest.raises(NotImplementedError, match="gluon"):
        F.fused_rms_mxfp4_quant(torch.randn(2, 64), torch.ones(64), 1e-6, inargs="gluon")
