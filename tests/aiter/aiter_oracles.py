"""Independent oracles for the qfuse.aiter tests: AITER's formulas written again in plain
torch (from /work/shared/spec/aiter-semantics.md and AITER's torch references), with
qfuse's documented defined results where AITER's are undefined. They share no code with
qfuse, so a wrapper that binds an argument, an option or a layout wrongly fails here even
when both qfuse backends agree."""
from __future__ import annotations

import math

import torch

FMAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0, torch.int8: 127.0}


def codes(v: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """fp32 values to codes, saturating at the format's largest value: fp8 RNE, int8
    toward zero (NaN gives the fp8 NaN code, int8 0)."""
    m = FMAX[dt]
    v = torch.where(v.isnan(), v, v.clamp(-m, m))
    if dt == torch.int8:
        return torch.where(v.isnan(), torch.zeros_like(v), v.trunc()).to(torch.int8)
    nan = 0x7F if dt == torch.float8_e4m3fn else 0x80     # one NaN code, whatever the sign
    c = v.to(dt).view(torch.uint8)
    return torch.where(v.isnan(), torch.full_like(c, nan), c).view(dt)


def bits(t: torch.Tensor) -> torch.Tensor:
    """A tensor's bytes (codes compare by bits: fp8 NaN == NaN, -0 != +0)."""
    t = t.contiguous()
    return t.view(torch.uint8) if t.element_size() == 1 else t.view(torch.int32) \
        if t.dtype == torch.float32 else t.view(torch.int16)


def rcp(s: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(s) / s


def scale_rows(amax, dmax, zero: str, floor=1e-10):
    """``amax / dmax`` with a zero policy: one (0 -> 1), floor (max(amax, floor)), zero."""
    if zero == "floor":
        return torch.maximum(amax, torch.full_like(amax, floor)) / dmax
    s = amax / dmax
    if zero == "one":
        s = torch.where(s == 0, torch.ones_like(s), s)
    return s


def quant_rows(h, s, dt, recip: str):
    """codes of ``h / s`` (``div``) or ``h * (1 / s)`` (``rcp``); a zero scale gives 0."""
    v = h / s if recip == "div" else h * rcp(s)
    v = torch.where(s == 0, torch.zeros_like(v), v)
    return codes(v, dt)


def per_token(x, dt, zero, recip, dmax=None, x_scale=None, floor=1e-10):
    h = x.float() if x_scale is None else x.float() * x_scale.float()
    s = scale_rows(h.abs().amax(-1, keepdim=True), dmax or FMAX[dt], zero, floor)
    return quant_rows(h, s, dt, recip), s


def per_tensor(x, dt, zero, recip, dmax=None):
    h = x.float()
    s = scale_rows(h.abs().amax().reshape(1), dmax or FMAX[dt], zero)
    return quant_rows(h, s, dt, recip), s


def per_group(x, dt, g, zero, recip, floor=1e-10):
    m, n = x.shape
    hg = x.float().reshape(m, n // g, g)
    s = scale_rows(hg.abs().amax(-1, keepdim=True), FMAX[dt], zero, floor)
    return quant_rows(hg, s, dt, recip).reshape(m, n), s.reshape(m, n // g)


# ------------------------------------------------------------------ MX
def _exp_field(v: torch.Tensor) -> torch.Tensor:
    return (v.view(torch.int32) >> 23) & 0xFF


def e8m0(amax: torch.Tensor, mode: str, max_pos=6.0, emax=2) -> torch.Tensor:
    """E8M0 bytes of block amaxes (aiter-semantics.md 6.3), NaN gives 255."""
    a = amax.float()
    out = torch.empty(a.shape, dtype=torch.int64)
    for i, val in enumerate(a.reshape(-1).tolist()):
        out.view(-1)[i] = _e8m0_one(val, mode, max_pos, emax)
    return out.to(torch.uint8)


def _clampb(e: int) -> int:
    return max(-127, min(127, e)) + 127


def _f32(v: float) -> float:
    return torch.tensor(v, dtype=torch.float32).item()


def _e8m0_one(a: float, mode: str, max_pos: float, emax: int) -> int:
    if math.isnan(a):
        return 255
    if mode == "roundup":
        q = torch.tensor(a, dtype=torch.float32) / torch.tensor(max_pos, dtype=torch.float32)
        bitsq = q.view(torch.int32).item()
        e, mant = (bitsq >> 23) & 0xFF, bitsq & 0x7FFFFF
        return 255 if e == 255 else e + (1 if mant and e < 255 else 0)
    if a == 0:
        return 0
    if mode == "even":
        if math.isinf(a):
            return 254
        b = torch.tensor(a, dtype=torch.float32).view(torch.int32).item() & 0x7FFFFFFF
        r = (b + 0x200000) & 0x7F800000          # the exponent after rounding up at 0.75
        if r == 0:                               # a subnormal amax below 0.75 * 2**-126
            return 0
        return 254 if r == 0x7F800000 else _clampb((r >> 23) - 127 - emax)
    if math.isinf(a):
        return 254
    if mode == "floor":
        return _clampb(math.floor(math.log2(a)) - emax)
    if mode == "ceil":
        return _clampb(math.ceil(math.log2(a)) - emax)
    raise ValueError(mode)


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e2m1(v: torch.Tensor) -> torch.Tensor:
    """E2M1 codes, RNE on the grid, saturating at 6; sign bit from v's sign; NaN gives 7."""
    out = torch.empty(v.shape, dtype=torch.uint8)
    flat = out.view(-1)
    for i, x in enumerate(v.reshape(-1).tolist()):
        if math.isnan(x):
            flat[i] = 7
            continue
        a = min(abs(x), 6.0)
        best = min(range(8), key=lambda k: (abs(E2M1[k] - a), k % 2 if k >= 2 else k))
        # ties between grid points: the even code (0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, ...)
        lo = max(k for k in range(8) if E2M1[k] <= a)
        hi = min(k for k in range(8) if E2M1[k] >= a)
        if lo != hi and E2M1[hi] - a == a - E2M1[lo]:
            best = lo if lo % 2 == 0 else hi
        flat[i] = best | (8 if math.copysign(1.0, x) < 0 else 0)
    return out


def pack(c: torch.Tensor) -> torch.Tensor:
    return (c[..., 0::2] & 0xF) | ((c[..., 1::2] & 0xF) << 4)


def mxfp4(x: torch.Tensor, mode: str):
    """``(packed [M, N/2], scale bytes [M, ceil(N/32)])``; a partial last 1x32 block is
    scaled by its real elements (AITER's kernels load the missing ones as 0)."""
    m, n = x.shape
    g = -(-n // 32)
    xb = torch.nn.functional.pad(x.float(), (0, g * 32 - n)).reshape(m, g, 32)
    b = e8m0(xb.abs().amax(-1), mode)
    sc = torch.where(b == 0, torch.tensor(2.0 ** -127), torch.pow(2.0, b.float() - 127))
    sc = torch.where(b == 255, torch.tensor(float("nan")), sc)
    q = e2m1(xb / sc[..., None]).reshape(m, g * 32)[:, :n]
    return pack(q), b


def shuffle(s: torch.Tensor, pad: int = 0) -> torch.Tensor:
    """AITER's e8m0_shuffle: pad to (256, 8) multiples, permute (aiter-semantics.md 7)."""
    m, n = s.shape
    sm, sn = -(-m // 256) * 256, -(-n // 8) * 8
    p = torch.full((sm, sn), pad, dtype=torch.uint8)
    p[:m, :n] = s
    return p.view(sm // 32, 2, 16, sn // 8, 2, 4).permute(0, 3, 5, 2, 4, 1).reshape(sm, sn)


# ------------------------------------------------------------------ fused (Triton)
def rms(u, w, eps):
    """RMSNorm in fp32 as AITER's Triton kernels order it: (u * inv) * w."""
    u = u.float()
    inv = 1.0 / torch.sqrt((u * u).sum(-1, keepdim=True) / u.shape[-1] + eps)
    return (u * inv) * w.float()


def group_fp8(y, g, dt=torch.float8_e4m3fn):
    """AITER's _fp8_quant_op: max(amax, 1e-10) / max per 1 x g group (last may be partial)."""
    m, n = y.shape
    pad = -n % g
    yp = torch.nn.functional.pad(y, (0, pad)).view(m, -1, g)
    s = yp.abs().amax(-1).clamp(min=1e-10) / FMAX[dt]
    q = codes(yp * (1.0 / s)[..., None], dt).view(torch.uint8).view(m, -1)[:, :n]
    return q.view(dt), s
