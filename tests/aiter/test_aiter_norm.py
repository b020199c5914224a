"""qfuse.aiter.ops.norm on both backends against an fp32 oracle of the AITER kernel each
function mirrors (opus RMSNorm quant, HIP per-group rmsnorm_quant, CK LayerNorm
SmoothQuant), writing into caller-allocated outputs."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import agree, backends, edge_rows, on
from qfuse.aiter.ops import norm as N


def layer(u, w, b, eps):
    u = u.float()
    d = u - u.sum(-1, keepdim=True) / u.shape[-1]
    inv = 1.0 / torch.sqrt((d * d).sum(-1, keepdim=True) / u.shape[-1] + eps)
    return (d * inv) * w.float() + b.float()


def rne_codes(v, dt):
    if dt != torch.int8:
        return O.codes(v, dt)
    return torch.where(v.isnan(), 0, v.clamp(-127, 127).round()).to(torch.int8)


def per_token(h, dt, zero, recip, rne):
    s = O.scale_rows(h.abs().amax(-1, keepdim=True), O.FMAX[dt], zero)
    v = h / s if recip == "div" else h * (1.0 / s)
    v = torch.where(s == 0, torch.zeros_like(v), v)
    return (rne_codes(v, dt) if rne else O.codes(v, dt)), s


def buffers(x, dt, groups=1):
    m = x.shape[0]
    return torch.empty(x.shape, dtype=dt), torch.empty(m, groups)


@backends
@pytest.mark.parametrize("dt", (torch.int8, torch.float8_e4m3fnuz))
def test_rmsnorm2d_fwd_with_dynamicquant(backend, dt):
    x = edge_rows(3, 96, nan=False)
    w = torch.randn(96, dtype=x.dtype)
    out, ys = buffers(x, dt)
    on(backend, N.rmsnorm2d_fwd_with_dynamicquant, out, x, ys, w, 1e-5)
    wq, ws = per_token(O.rms(x, w, 1e-5), dt, "zero", "rcp", rne=True)
    agree({"q": out, "s": ys}, {"q": wq, "s": ws})


@backends
def test_rmsnorm2d_fwd_with_add_dynamicquant_groups(backend):
    x = edge_rows(2, 256, nan=False)
    r = torch.randn(x.shape, dtype=x.dtype)
    w = torch.randn(256, dtype=x.dtype)
    out, ys = buffers(x, torch.int8, 2)
    ro = torch.empty_like(x)
    on(backend, N.rmsnorm2d_fwd_with_add_dynamicquant, out, x, r, ro, ys, w, 1e-5,
       group_size=128, shuffle_scale=True)
    h = x.float() + r.float()
    wq, ws = O.per_group(O.rms(h, w, 1e-5), torch.int8, 128, "floor", "rcp")
    agree({"q": out, "s": ys, "h": ro},
          {"q": wq, "s": ws.t().contiguous().view(ws.shape), "h": h.to(x.dtype)})


@backends
def test_rmsnorm2d_fwd_with_add_smoothquant(backend):
    x = edge_rows(3, 64, torch.float16, nan=False)
    r = torch.randn(x.shape, dtype=x.dtype)
    w = torch.rand(64, dtype=x.dtype) + 0.5
    xs = torch.rand(64) + 0.5
    out, ys = buffers(x, torch.int8)
    ro, ub = torch.empty_like(x), torch.empty_like(x)
    on(backend, N.rmsnorm2d_fwd_with_add_smoothquant, out, x, r, ro, xs, ys, w, 1e-6,
       out_before_quant=ub)
    h = x.float() + r.float()
    hs = O.rms(h, w, 1e-6) * xs
    wq, ws = per_token(hs, torch.int8, "zero", "rcp", rne=True)
    agree({"q": out, "s": ys, "h": ro, "u": ub},
          {"q": wq, "s": ws, "h": h.half(), "u": hs.half()})
    out2, ys2 = buffers(x, torch.int8)
    on(backend, N.rmsnorm2d_fwd_with_smoothquant, out2, x, xs, ys2, w, 1e-6)
    wq2, ws2 = per_token(O.rms(x, w, 1e-6) * xs, torch.int8, "zero", "rcp", rne=True)
    agree({"q": out2, "s": ys2}, {"q": wq2, "s": ws2})


@backends
@pytest.mark.parametrize("add", (False, True))
def test_layernorm2d_smoothquant(backend, add):
    x = edge_rows(3, 80, nan=False)
    w, b = torch.randn(80, dtype=x.dtype), torch.randn(80, dtype=x.dtype)
    xs = torch.rand(80) + 0.5
    xb = torch.randn(80, dtype=x.dtype)
    out, ys = buffers(x, torch.int8)
    if add:
        r, ro = torch.randn(x.shape, dtype=x.dtype), torch.empty_like(x)
        on(backend, N.layernorm2d_fwd_with_add_smoothquant, out, x, r, ro, xs, ys, w, b, 1e-5,
           x_bias=xb)
        h = (x.float() + xb.float()) + r.float()
        agree({"h": ro}, {"h": h.to(x.dtype)})
    else:
        on(backend, N.layernorm2d_fwd_with_smoothquant, out, x, xs, ys, w, b, 1e-5)
        h = x.float()
    wq, ws = per_token(layer(h, w, b, 1e-5) * xs, torch.int8, "zero", "div", rne=False)
    agree({"q": out, "s": ys}, {"q": wq, "s": ws})


@backends
@pytest.mark.parametrize("gemma", (False, True))
def test_rmsnorm2d_fwd_and_with_add(backend, gemma):
    x = torch.randn(2, 3, 48, dtype=torch.bfloat16)
    w = torch.randn(48, dtype=torch.bfloat16)
    y = on(backend, N.rmsnorm2d_fwd, x, w, 1e-6)
    agree({"y": y}, {"y": O.rms(x, w, 1e-6).bfloat16()})
    r = torch.randn_like(x)
    out, ro = torch.empty_like(x), torch.empty_like(x)
    on(backend, N.rmsnorm2d_fwd_with_add, out, x, r, ro, w, 1e-6, gemma_norm=gemma)
    h = x.float() + r.float()
    agree({"y": out, "h": ro},
          {"y": O.rms(h, w.float() + 1 if gemma else w, 1e-6).bfloat16(), "h": h.bfloat16()})


def test_aiter_paths_and_errors():
    import qfuse.aiter as aiter
    from qfuse.aiter.ops import rmsnorm
    assert rmsnorm is N and aiter.rmsnorm2d_fwd_with_dynamicquant is N.rmsnorm2d_fwd_with_dynamicquant
    x = torch.randn(2, 64)
    with pytest.raises(NotImplementedError, match="use_model_sensitive_rmsnorm"):
        N.rmsnorm2d_fwd(x, torch.ones(64), 1e-6, use_model_sensitive_rmsnorm=1)
    out, ys = buffers(x, torch.int8)
    with pytest.raises(ValueError, match="group_size must be 0, 32, 64 or 128"):
        N.rmsnorm2d_fwd_with_dynamicquant(out, x, ys, torch.ones(64), 1e-6, group_size=16)
    with pytest.raises(ValueError, match="yscale must hold 2 values"):
        N.rmsnorm2d_fwd_with_dynamicquant(out, x, torch.empty(3), torch.ones(64), 1e-6)
    with pytest.raises(ValueError, match="out must have input's shape"):
        N.rmsnorm2d_fwd_with_dynamicquant(out[:1], x, ys, torch.ones(64), 1e-6)
