"""qfuse.aiter.ops.triton.quant.fused_fp8_quant on both backends against an fp32 oracle of
AITER's Triton kernels, with every optional input and output. Norm sums may round
differently (docs/semantics.md "Agreement"), so outputs meet the agreement rule."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_oracles import group_fp8, rms
from aiter_testlib import agree, backends, edge_rows, on
from qfuse.aiter.ops.triton.quant import fused_fp8_quant as F

FP8 = torch.float8_e4m3fn


def inputs(m=4, n=192, seed=0):
    x = edge_rows(m, n, seed=seed, nan=False)
    w = (torch.rand(n) + 0.5).to(torch.bfloat16)
    return x, w


@backends
@pytest.mark.parametrize("res,two,out1", [(False, False, False), (True, True, True)])
def test_fused_rms_fp8_group_quant(backend, res, two, out1):
    x, w = inputs()
    r = edge_rows(4, 192, seed=3, nan=False) if res else None
    x2 = torch.randn(x.shape[0], 72, dtype=torch.bfloat16) if two else None
    w2 = torch.rand(72, dtype=torch.bfloat16) if two else None
    (q, s), y1, y2, hr = on(backend, F.fused_rms_fp8_group_quant, x, w, 1e-6, x2, w2, 1e-5,
                            group_size=128, res1=r, output_unquantized_inp1=out1)
    h = x.float() + (r.float() if res else 0)
    y = rms(h, w, 1e-6)
    wq, ws = group_fp8(y, 128)
    want = {"q": wq, "s": ws}
    got = {"q": q, "s": s}
    if out1:
        want["y1"], got["y1"] = y.to(x.dtype), y1
    if two:
        want["y2"], got["y2"] = rms(x2, w2, 1e-5).to(x.dtype), y2
    if res:
        want["h"], got["h"] = h.to(x.dtype), hr
    assert (y1 is None) != out1 and (y2 is None) != two and (hr is None) != res
    agree(got, want)


@backends
@pytest.mark.parametrize("strided", (False, True))
def test_fused_rms_fp8_group_quant_transposed_scale(backend, strided):
    x, w = inputs(m=3, n=256)
    (q, s), *_ = on(backend, F.fused_rms_fp8_group_quant, x, w, 1e-6, group_size=64,
                    transpose_scale=True, is_x_scale_strided=strided)
    _, ws = group_fp8(rms(x, w, 1e-6), 64)
    assert s.shape == ws.shape
    if strided:
        assert s.stride() == (1, x.shape[0])
        agree({"s": s.contiguous()}, {"s": ws})
    else:
        assert s.is_contiguous()
        agree({"s": s.view(ws.shape[1], ws.shape[0]).t().contiguous()}, {"s": ws})


@backends
@pytest.mark.parametrize("flags", ["", "res,out1,conv,two"])
def test_fused_rms_fp8_per_tensor_static_quant(backend, flags):
    x, w = inputs(n=160)
    r = torch.randn(x.shape, dtype=x.dtype) if "res" in flags else None
    x2 = torch.randn(x.shape[0], 32, dtype=x.dtype) if "two" in flags else None
    w2 = torch.ones(32, dtype=x.dtype) if "two" in flags else None
    scale = torch.tensor([0.02])
    q, y1, y2, hr = on(backend, F.fused_rms_fp8_per_tensor_static_quant, x, w, 1e-6, scale,
                       x2, w2, 1e-6, res1=r, output_unquantized_inp1="out1" in flags,
                       rmsnorm_convert_to_inp1_type="conv" in flags)
    y = rms(x.float() + (r.float() if r is not None else 0), w, 1e-6)
    yq = y.to(x.dtype).float() if "conv" in flags else y
    agree({"q": q}, {"q": O.codes(yq * (1.0 / scale), FP8)})
    if flags:
        agree({"y1": y1, "y2": y2}, {"y1": y.to(x.dtype), "y2": rms(x2, w2, 1e-6).to(x.dtype)})


@backends
@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh"])
def test_fused_reduce_act_mul_fp8_group_quant_2d(backend, act):
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    (q, s), y2 = on(backend, F.fused_reduce_act_mul_fp8_group_quant, x, act, group_size=32)
    f = {"silu": torch.nn.functional.silu,
         "gelu": torch.nn.functional.gelu,
         "gelu_tanh": lambda v: torch.nn.functional.gelu(v, approximate="tanh")}[act]
    xf = x.float()
    h = f(xf[:, :128]) * xf[:, 128:]
    wq, ws = group_fp8(h, 32)
    agree({"q": q, "s": s}, {"q": wq, "s": ws})
    assert y2 is None


@backends
def test_fused_reduce_act_mul_fp8_group_quant_split_k(backend):
    x = torch.randn(3, 4, 256)
    x2 = torch.randn(3, 4, 40)
    (q, s), y2 = on(backend, F.fused_reduce_act_mul_fp8_group_quant, x, "silu", x2,
                    group_size=128, dtype=torch.float16)
    r = (x[0] + x[1]) + x[2]
    wq, ws = group_fp8(torch.nn.functional.silu(r[:, :128]) * r[:, 128:], 128)
    agree({"q": q, "s": s}, {"q": wq, "s": ws})
    agree({"y2": y2}, {"y2": ((x2[0] + x2[1]) + x2[2]).to(torch.float16)})


@backends
def test_fused_reduce_rms_fp8_group_quant_everything(backend):
    s_, m, n = 2, 3, 128
    x = torch.randn(s_, m, n)
    w = torch.rand(n) + 0.5
    x2, w2 = torch.randn(s_, m, 64), torch.rand(64) + 0.5
    x3 = torch.randn(s_, m, 24)
    r = torch.randn(m, n)
    out3 = torch.empty(m, 24, dtype=torch.bfloat16)
    (q, sc), y1, y2, hr, y3 = on(backend, F.fused_reduce_rms_fp8_group_quant, x, w, 1e-6,
                                 x2, w2, 1e-6, x3, group_size=64, dtype=torch.bfloat16,
                                 res1=r, output_unquantized_inp1=True, out3=out3,
                                 transpose_scale=True, is_x_scale_strided=True)
    h = (x[0] + x[1]) + r
    y = rms(h, w, 1e-6)
    wq, ws = group_fp8(y, 64)
    assert y3 is out3 and sc.stride() == (1, m)
    agree({"q": q, "s": sc.contiguous(), "y1": y1, "y2": y2, "h": hr, "y3": y3},
          {"q": wq, "s": ws, "y1": y.bfloat16(), "y2": rms(x2[0] + x2[1], w2, 1e-6).bfloat16(),
           "h": h.bfloat16(), "y3": (x3[0] + x3[1]).bfloat16()})


@backends
def test_fused_reduce_rms_fp8_group_quant_2d(backend):
    x, w = inputs(m=2, n=128)
    (q, s), y1, y2, hr, y3 = on(backend, F.fused_reduce_rms_fp8_group_quant, x, w, 1e-6)
    wq, ws = group_fp8(rms(x, w, 1e-6), 128)
    agree({"q": q, "s": s}, {"q": wq, "s": ws})
    assert y1 is None and y2 is None and hr is None and y3 is None


@backends
@pytest.mark.parametrize("conv", (False, True))
def test_fused_silu_mul_fp8_per_tensor_static_quant(backend, conv):
    x = torch.randn(4, 96, dtype=torch.bfloat16) * 4
    scale = torch.tensor([0.01])
    q = on(backend, F.fused_silu_mul_fp8_per_tensor_static_quant, x, scale,
           silu_convert_to_inp_type=conv)
    xf = x.float()
    h = torch.nn.functional.silu(xf[:, :48]) * xf[:, 48:]
    h = h.to(x.dtype).float() if conv else h
    agree({"q": q}, {"q": O.codes(h * (1.0 / scale), FP8)})


@backends
@pytest.mark.parametrize("transpose", (False, True))
def test_fused_flatten_fp8_group_quant(backend, transpose):
    x = torch.randn(4, 3, 64, dtype=torch.bfloat16).transpose(0, 1).contiguous() \
        .transpose(0, 1)                       # strided over M and N1, as a permuted view
    q, s = on(backend, F.fused_flatten_fp8_group_quant, x, 64, transpose_scale=transpose)
    wq, ws = group_fp8(x.reshape(4, 192).float(), 64)
    assert s.stride() == ((1, 4) if transpose else (3, 1))
    agree({"q": q, "s": s.contiguous()}, {"q": wq, "s": ws}, k=0)


@pytest.mark.parametrize("call,match", [
    (lambda: F.fused_rms_fp8_group_quant(torch.randn(2, 64), torch.ones(32), 1e-6),
     r"inp1_weight must be \[64\]"),
    (lambda: F.fused_rms_fp8_group_quant(torch.randn(2, 64), torch.ones(64), None),
     "inp1_epsilon"),
    (lambda: F.fused_rms_fp8_group_quant(torch.randn(2, 64), torch.ones(64), 1e-6,
                                         res1=torch.randn(3, 64)), "res1 must have 2 rows"),
    (lambda: F.fused_reduce_act_mul_fp8_group_quant(torch.randn(2, 63)), "even"),
    (lambda: F.fused_reduce_act_mul_fp8_group_quant(torch.randn(2, 64), "relu"), "activation"),
    (lambda: F.fused_reduce_act_mul_fp8_group_quant(torch.randn(1, 2, 64)), "split-K dim"),
    (lambda: F.fused_silu_mul_fp8_per_tensor_static_quant(torch.randn(2, 64),
                                                          torch.ones(2)), "one value"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unsupported_group_size():
    with pytest.raises(NotImplementedError, match="group_size=96"):
        F.fused_rms_fp8_group_quant(torch.randn(2, 192), torch.ones(192), 1e-6, group_size=96)
