"""The benchmark pipelines written the obvious way in plain torch (the baselines).

One function per pipeline of ``benchmarks/pipelines.qp``, same name, same parameters
(same order), same results in the same order. fp32 math, ``amax / dtype_max``, clamp,
``.to(fp8)``; MXFP4 with integer bit operations on the fp32 pattern; the KV-cache write
with ``index_put`` into the cache, in place. Every function runs eagerly on CPU or CUDA and
through ``torch.compile(fn, dynamic=False)`` (no data-dependent shapes, no host syncs),
and can be captured in a CUDA graph.

They follow ``docs/semantics.md`` exactly (division vs multiply by the reciprocal, the
E8M0 ``even`` rounding, E2M1 ties, int8 truncation, pack and shuffle layouts) on the inputs
``benchmarks/cases.py`` draws: finite values, no all-zero group. Left out, as plain torch
code would: the zero-group policies (``s = 0 -> 1`` / codes 0), NaN/Inf codes, partial
1x128 / 1x32 groups (N must be a multiple of 128 / 32), skipped or repeated KV slots
(slots must be distinct and >= 0). The cache write updates ``k_cache`` / ``k_scales`` in
place, as qfuse's callable does (the reference backend returns copies).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
I8_MAX = 127.0

__all__ = ["REFS", "per_tensor_fp8", "per_token_fp8", "static_per_tensor_fp8",
           "rmsnorm_per_token_fp8", "add_rmsnorm_per_token_fp8", "rmsnorm_group128_fp8",
           "rmsnorm_static_fp8", "silu_mul_static_fp8", "smooth_per_token_i8", "mxfp4_even",
           "rmsnorm_mxfp4_shuffle", "kv_key_per_token_fp8"]


# ---------------------------------------------------------------------------- helpers
def _div(a: torch.Tensor, c: float) -> torch.Tensor:
    """``a / c``, correctly rounded. (On CUDA, ``tensor / python_float`` multiplies by the
    rounded reciprocal instead, an ulp off for constants such as 448, 127 or N = 7168;
    a 0-d tensor on a's device gets a real division.)"""
    return a / torch.full((), c, dtype=a.dtype, device=a.device)


def _fp8(v: torch.Tensor) -> torch.Tensor:
    """Saturate to +-448, then RNE to e4m3fn (torch's cast keeps subnormals)."""
    return v.clamp(-FP8_MAX, FP8_MAX).to(FP8)


def _rms(u: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of fp32 ``u`` in fp32: ``(u * (1 / sqrt(mean(u^2) + eps))) * w``."""
    ms = _div((u * u).sum(dim=-1, keepdim=True), u.shape[-1])
    inv = 1.0 / torch.sqrt(ms + eps)
    return (u * inv) * w.float()


def _per_token_fp8(y: torch.Tensor):
    s = _div(y.abs().amax(dim=-1, keepdim=True), FP8_MAX)
    return _fp8(y / s), s


def _mx_e2m1(y: torch.Tensor):
    """MXFP4 of fp32 ``y [M, N]``: E8M0 ``even`` scale bytes per 1x32 block and packed
    E2M1 codes (element 2j in the low nibble)."""
    m, n = y.shape
    blocks = y.reshape(m, n // 32, 32)
    amax = blocks.abs().amax(dim=-1)                                   # [M, N/32]
    bits = amax.view(torch.int32)
    r = (bits + 0x200000) & -0x800000                                  # & 0xFF800000
    b = ((r >> 23) - 2).clamp(0, 254)                                  # floor(log2 R) - emax
    # scale 2^(b - 127): b << 23 is the fp32 pattern (b = 0 is the subnormal 2^-127)
    sbits = torch.where(b == 0, torch.full_like(b, 0x400000), b << 23)
    v = blocks / sbits.view(torch.float32).unsqueeze(-1)               # exact
    a = v.abs()
    # RNE onto {0, .5, 1, 1.5, 2, 3, 4, 6} with ties to even, saturating at 6
    mag = ((a > 0.25).to(torch.uint8) + (a >= 0.75).to(torch.uint8)
           + (a > 1.25).to(torch.uint8) + (a >= 1.75).to(torch.uint8)
           + (a > 2.5).to(torch.uint8) + (a >= 3.5).to(torch.uint8)
           + (a > 5.0).to(torch.uint8))
    code = mag | (torch.signbit(v).to(torch.uint8) << 3)
    code = code.reshape(m, n)
    packed = code[:, 0::2] | (code[:, 1::2] << 4)
    return packed, b.to(torch.uint8)


def _e8m0_shuffle(s: torch.Tensor) -> torch.Tensor:
    """AITER ``e8m0_shuffle``: pad to ``[round_up(m, 256), round_up(n, 8)]`` with 0 and
    permute 32x8 tiles (entry (r, c) to ``(r//32)*32*sn + (c//8)*256 + (c%4)*64 +
    (r%16)*4 + ((c%8)//4)*2 + (r%32)//16``)."""
    m, n = s.shape
    sm, sn = -(-m // 256) * 256, -(-n // 8) * 8
    p = F.pad(s, (0, sn - n, 0, sm - m))
    p = p.view(sm // 32, 2, 16, sn // 8, 2, 4).permute(0, 3, 5, 2, 4, 1)
    return p.reshape(sm, sn)


# ---------------------------------------------------------------------------- pipelines
def per_tensor_fp8(x):
    xf = x.float()
    s = _div(xf.abs().amax().reshape(1), FP8_MAX)
    return _fp8(xf / s), s


def per_token_fp8(x):
    return _per_token_fp8(x.float())


def static_per_tensor_fp8(x, s):
    return _fp8(x.float() * (1.0 / s))


def rmsnorm_per_token_fp8(x, w, eps=1e-6):
    return _per_token_fp8(_rms(x.float(), w, eps))


def add_rmsnorm_per_token_fp8(x, res, w, eps=1e-6):
    h = x.float() + res.float()                      # the norm reads the fp32 sum
    q, s = _per_token_fp8(_rms(h, w, eps))
    return q, s, h.to(x.dtype)


def rmsnorm_group128_fp8(x, w, eps=1e-6):
    y = _rms(x.float(), w, eps)
    m, n = y.shape
    g = y.reshape(m, n // 128, 128)
    s = _div(g.abs().amax(dim=-1).clamp_min(1e-10), FP8_MAX)    # zero=floor
    q = _fp8(g * (1.0 / s).unsqueeze(-1))                          # recip=mul_rcp
    return q.reshape(m, n), s


def rmsnorm_static_fp8(x, w, s, eps=1e-6):
    return _fp8(_rms(x.float(), w, eps) * (1.0 / s))


def silu_mul_static_fp8(gate, up, s):
    g = gate.float()
    h = (g / (1.0 + torch.exp(-g))) * up.float()
    return _fp8(h * (1.0 / s))


def smooth_per_token_i8(x, smooth_scale):
    h = x.float() * smooth_scale
    s = _div(h.abs().amax(dim=-1, keepdim=True), I8_MAX)
    q = torch.trunc(h / s).clamp(-I8_MAX, I8_MAX).to(torch.int8)
    return q, s


def mxfp4_even(x):
    return _mx_e2m1(x.float())


def rmsnorm_mxfp4_shuffle(x, w, eps=1e-6):
    q, s = _mx_e2m1(_rms(x.float(), w, eps))
    return q, _e8m0_shuffle(s)


def kv_key_per_token_fp8(k, k_cache, k_scales, slots):
    """Per-(token, head) fp8 write into a key-layout cache ``[NB, H, D/X, BS, X]`` and
    scales ``[H, S]`` at ``[h, slot]``, in place (as vLLM's reshape_and_cache and qfuse's
    callable do); returns the updated ``k_cache`` and ``k_scales`` themselves."""
    t, h, d = k.shape
    nb, _, dx, bs, xw = k_cache.shape
    kf = k.float()
    s = _div(kf.abs().amax(dim=-1), FP8_MAX)                          # [T, H]
    q = _fp8(kf * (1.0 / s.clamp_min(1e-12)).unsqueeze(-1))           # [T, H, D]
    blk, off = slots // bs, slots % bs
    # element (t, h, d) -> [blk, h, d // X, off, d % X]; fp8 through a byte view
    k_cache.view(torch.uint8)[blk, :, :, off, :] = q.view(torch.uint8).reshape(t, h, dx, xw)
    k_scales[:, slots] = s.transpose(0, 1)
    return k_cache, k_scales


REFS = {f.__name__: f for f in (
    per_tensor_fp8, per_token_fp8, static_per_tensor_fp8, rmsnorm_per_token_fp8,
    add_rmsnorm_per_token_fp8, rmsnorm_group128_fp8, rmsnorm_static_fp8,
    silu_mul_static_fp8, smooth_per_token_i8, mxfp4_even, rmsnorm_mxfp4_shuffle,
    kv_key_per_token_fp8)}
