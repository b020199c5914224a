"""Two fused kernels built from the qf_* helpers, for the cross-compile tests: rmsnorm +
per-token fp8 quantisation, and MXFP4 (E8M0 scale per 32 values, packed E2M1 codes)."""
import numpy as np
import triton
import triton.language as tl

from qf_triton_testlib import e2m1_oracle, e8m0_oracle, fp8_oracle
from qfuse.backends.triton.numerics import *  # noqa: F401,F403


@triton.jit
def k_rmsnorm_fp8(x_ptr, w_ptr, q_ptr, s_ptr, N, eps, BLOCK: tl.constexpr, IS_FNUZ: tl.constexpr,
                  DMAX: tl.constexpr, NATIVE: tl.constexpr):
    """y = (x * (1 / sqrt(sum(x*x) / N + eps))) * w; s = amax(y) / DMAX (0 -> 1);
    q = fp8(y / s), saturating. One program per row."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    m = cols < N
    x = tl.load(x_ptr + row * N + cols, mask=m, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=m, other=0.0).to(tl.float32)
    ms = qf_div(tl.sum(x * x, 0), N.to(tl.float32))
    inv = qf_div(1.0, qf_sqrt(ms + eps))
    y = (x * inv) * w
    s = qf_div(qf_amax(tl.where(m, y, 0.0), 0), DMAX)
    s = tl.where(s == 0.0, 1.0, s)
    q = qf_fp8_bits(qf_div(y, s), IS_FNUZ, DMAX, True, NATIVE)
    tl.store(q_ptr + row * N + cols, q, mask=m)
    tl.store(s_ptr + row, s)


@triton.jit
def k_mxfp4(x_ptr, q_ptr, b_ptr, N: tl.constexpr, MODE: tl.constexpr):
    """Per 32-group: b = e8m0(amax), v = x * 2^(127-b), codes = e2m1(v) packed two a byte."""
    row = tl.program_id(0)
    G: tl.constexpr = N // 32
    x = tl.load(x_ptr + row * N + tl.arange(0, N)).to(tl.float32)
    xg = tl.reshape(x, (G, 32))
    b = qf_e8m0_bytes(qf_amax(xg, 1), MODE, 6.0, 2)
    codes = qf_e2m1_codes(xg * qf_e8m0_inv_scale(b)[:, None])
    packed = qf_pack_nibbles(tl.reshape(codes, (1, N)), 1, N)
    tl.store(q_ptr + row * (N // 2) + tl.arange(0, N // 2)[None, :], packed)
    tl.store(b_ptr + row * G + tl.arange(0, G), b)


def rmsnorm_fp8_reference(x, w, eps, fnuz, dmax):
    """numpy fp32, step by step as docs/semantics.md writes it (sums in numpy's order)."""
    x, w = x.astype(np.float32), w.astype(np.float32)
    ms = (x * x).sum(axis=1, dtype=np.float32) / np.float32(x.shape[1])
    inv = np.float32(1) / np.sqrt(ms + np.float32(eps))
    y = (x * inv[:, None]) * w[None, :]
    s = np.abs(y).max(axis=1) / np.float32(dmax)
    s = np.where(s == 0, np.float32(1), s).astype(np.float32)
    return fp8_oracle(y / s[:, None], fnuz, dmax, True).reshape(x.shape), s


def mxfp4_reference(x, mode):
    rows, n = x.shape
    xg = x.astype(np.float32).reshape(rows, n // 32, 32)
    b = e8m0_oracle(np.abs(xg).max(axis=2), mode, 6.0, 2)
    inv = np.where(b == 255, np.nan, np.exp2(127.0 - b.astype(np.float64)))  # b = 255: NaN scale
    v = (xg.astype(np.float64) * inv[..., None]).astype(np.float32)  # exact: a power of two
    codes = e2m1_oracle(v).reshape(rows, n).astype(np.int64)
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8), b
