"""Test kernels, launchers and independent numpy oracles for qfuse.backends.triton.

The kernels live in a real file (a @triton.jit needs its source). Each elementwise kernel
runs one program per row of N elements; inputs are padded to whole rows. Oracles are
written from docs/semantics.md with numpy float64 grids, not from the helpers' bit tricks.
"""
import numpy as np
import torch
import triton
import triton.language as tl

from qfuse.backends.triton.triton_adapter import interpret
from qfuse.backends.triton.numerics import *  # noqa: F401,F403 - as generated kernels do

DEVICES = ["interp"] + (["cuda"] if torch.cuda.is_available() else [])
COLS = 1024


# ---------------------------------------------------------------- kernels
@triton.jit
def k_fp8(x_ptr, y_ptr, N: tl.constexpr, IS_FNUZ: tl.constexpr, DMAX: tl.constexpr,
          SAT: tl.constexpr, NATIVE: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_fp8_bits(tl.load(x_ptr + o), IS_FNUZ, DMAX, SAT, NATIVE))


@triton.jit
def k_int(x_ptr, y_ptr, N: tl.constexpr, RNE: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_int_codes(tl.load(x_ptr + o), RNE, LO, HI))


@triton.jit
def k_e2m1(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_e2m1_codes(tl.load(x_ptr + o)))


@triton.jit
def k_e2m1_half_up(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_e2m1_codes_half_up(tl.load(x_ptr + o)))


@triton.jit
def k_e2m1_pow2(x_ptr, b_ptr, y_ptr, N: tl.constexpr):
    """y = qf_e2m1_codes_pow2(x, b) (int32 codes), elementwise."""
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_e2m1_codes_pow2(tl.load(x_ptr + o), tl.load(b_ptr + o)))


@triton.jit
def k_e8m0_pow2_ok(b_ptr, a_ptr, y_ptr, N: tl.constexpr):
    """y[row] = qf_e8m0_pow2_ok over the row's N bytes and amaxes, as [N, 1] groups (a
    program-wide scalar, like the generated kernels' [BLOCK_M, groups, 1] bytes)."""
    o = tl.program_id(0) * N + tl.arange(0, N)
    ok = qf_e8m0_pow2_ok(tl.load(b_ptr + o)[:, None], tl.load(a_ptr + o)[:, None])
    tl.store(y_ptr + tl.program_id(0), ok)


@triton.jit
def k_silu(x_ptr, y_ptr, N: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_silu(tl.load(x_ptr + o)))


@triton.jit
def k_e8m0(x_ptr, y_ptr, N: tl.constexpr, MODE: tl.constexpr, MAX_POS: tl.constexpr,
           EMAX: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    tl.store(y_ptr + o, qf_e8m0_bytes(tl.load(x_ptr + o), MODE, MAX_POS, EMAX))


@triton.jit
def k_e8m0_apply(b_ptr, x_ptr, s_ptr, m_ptr, d_ptr, N: tl.constexpr):
    """s = scale(b); m = x * inv_scale(b); d = x / scale(b) (qf_div)."""
    o = tl.program_id(0) * N + tl.arange(0, N)
    b = tl.load(b_ptr + o)
    x = tl.load(x_ptr + o)
    tl.store(s_ptr + o, qf_e8m0_scale(b))
    tl.store(m_ptr + o, x * qf_e8m0_inv_scale(b))
    tl.store(d_ptr + o, qf_div(x, qf_e8m0_scale(b)))


@triton.jit
def k_round16(x_ptr, b_ptr, h_ptr, bs_ptr, hs_ptr, N: tl.constexpr):
    """b, h: the fp32 grid values; bs, hs: stored as bf16 (qf_to_bf16) / .to(f16)."""
    o = tl.program_id(0) * N + tl.arange(0, N)
    x = tl.load(x_ptr + o)
    b = qf_round_bf16(x)
    h = qf_round_f16(x)
    tl.store(b_ptr + o, b)
    tl.store(h_ptr + o, h)
    tl.store(bs_ptr + o, qf_to_bf16(x))
    tl.store(hs_ptr + o, h.to(tl.float16))


@triton.jit
def k_divsqrt(a_ptr, b_ptr, q_ptr, r_ptr, N: tl.constexpr):
    o = tl.program_id(0) * N + tl.arange(0, N)
    a = tl.load(a_ptr + o)
    tl.store(q_ptr + o, qf_div(a, tl.load(b_ptr + o)))
    tl.store(r_ptr + o, qf_sqrt(a))


@triton.jit
def k_divcodes(a_ptr, b_ptr, q_ptr, N: tl.constexpr, PER_ROW: tl.constexpr):
    """qf_div_codes(a, b) with b one scalar per row (PER_ROW: b[row], else b[row, 0] as a
    [1, 1] block, the shape a per-token scale has) over a row of a."""
    row = tl.program_id(0)
    o = row * N + tl.arange(0, N)
    a = tl.load(a_ptr + o)
    if PER_ROW:
        q = qf_div_codes(a, tl.load(b_ptr + row))
    else:
        b2 = tl.load(b_ptr + row + tl.arange(0, 1)[:, None])
        q = tl.reshape(qf_div_codes(a[None, :], b2), (N,))
    tl.store(q_ptr + o, q)


@triton.jit
def k_div_bounded(a_ptr, b_ptr, q_ptr, ok_ptr, N: tl.constexpr, D: tl.constexpr):
    """Per row: b = RN(max|a| / D) (1 for an all-zero row), ok = qf_scale_fast_ok(b, True)
    stored per row, and q = qf_div_bounded(a, b) where ok (the fast path of round(x,
    scale(x))), a / b by qf_div_codes elsewhere."""
    row = tl.program_id(0)
    o = row * N + tl.arange(0, N)
    a = tl.load(a_ptr + o)[None, :]
    b = qf_div(tl.max(tl.abs(a), axis=1, keep_dims=True), D)
    b = tl.where(b == 0.0, 1.0, b)
    ok = qf_scale_fast_ok(b, True)
    if ok:
        q = qf_div_bounded(a, b)
    else:
        q = qf_div_codes(a, b)
    tl.store(b_ptr + row + tl.arange(0, 1)[:, None], b)
    tl.store(ok_ptr + row, ok)
    tl.store(q_ptr + o[None, :], q)


@triton.jit
def k_amax(x_ptr, y_ptr, N: tl.constexpr):
    row = tl.program_id(0)
    v = tl.load(x_ptr + row * N + tl.arange(0, N))
    tl.store(y_ptr + row, qf_amax(v, 0))


@triton.jit
def k_pack(c_ptr, y_ptr, R: tl.constexpr, N: tl.constexpr):
    r = tl.arange(0, R)[:, None]
    c = tl.load(c_ptr + r * N + tl.arange(0, N)[None, :])
    tl.store(y_ptr + r * (N // 2) + tl.arange(0, N // 2)[None, :], qf_pack_nibbles(c, R, N))


# ---------------------------------------------------------------- launching
def launch(kernel, grid, device, *args, **constexprs):
    """Run `kernel` interpreted (device 'interp', CPU tensors) or natively (a CUDA GPU)."""
    if device == "interp":
        interpret(kernel)[grid](*args, **constexprs)
    else:                                   # as generated kernels launch: no contraction
        kernel[grid](*args, **constexprs, enable_fp_fusion=False)
        torch.cuda.synchronize()


def run_rows(kernel, device, inputs, out_dtypes, **constexprs):
    """Elementwise kernel over 1-D inputs: pads them to [R, COLS], returns 1-D numpy outputs."""
    n = len(inputs[0])
    rows = -(-n // COLS)
    dev = "cpu" if device == "interp" else device
    ins = []
    for a in inputs:
        t = torch.zeros(rows * COLS, dtype=torch.from_numpy(np.asarray(a)[:1]).dtype)
        t[:n] = torch.from_numpy(np.ascontiguousarray(a))
        ins.append(t.to(dev))
    outs = [torch.zeros(rows * COLS, dtype=d, device=dev) for d in out_dtypes]
    launch(kernel, (rows,), device, *ins, *outs, N=COLS, **constexprs)
    return [o.cpu()[:n] for o in outs]


def f32(bits):
    """uint32 patterns -> float32 numpy array."""
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def bits_of(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def same_f32(got, want):
    """Bitwise fp32 equality, any NaN equal to any NaN; returns the mismatch mask."""
    g = np.asarray(got, dtype=np.float32)
    w = np.asarray(want, dtype=np.float32)
    both_nan = np.isnan(g) & np.isnan(w)
    return (g.view(np.uint32) != w.view(np.uint32)) & ~both_nan


def with_neighbours(vals):
    """vals, their fp32 neighbours up/down, and all of them negated."""
    v = np.asarray(vals, dtype=np.float32)
    v = np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf))])
    return np.concatenate([v, -v]).astype(np.float32)


SPECIALS = f32([0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000,
                0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7FBFFFFF])


# ---------------------------------------------------------------- oracles (numpy float64)
def nearest_even(grid, ax, half_up=False):
    """Index of the nearest grid point to ax (ascending float64 grid, ax in range, no NaN);
    ties go to the even index (= the even code: its last mantissa bit is 0), or with
    ``half_up`` to the larger value."""
    hi = np.clip(np.searchsorted(grid, ax, side="left"), 0, len(grid) - 1)
    lo = np.maximum(hi - 1, 0)
    dlo, dhi = ax - grid[lo], grid[hi] - ax
    tie = hi if half_up else np.where(lo % 2 == 0, lo, hi)
    return np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, tie))


def fp8_magnitudes(fnuz, virtual=True):
    """Value of each magnitude code 0..max, plus (virtual) the next code, whose value
    (480 / 256) marks overflow: rounding to it means 'out of range'."""
    bias = 8 if fnuz else 7
    codes = np.arange(0x80 + (1 if fnuz else 0))
    if not virtual:
        codes = codes[:-1]
    e, m = codes >> 3, codes & 7
    return np.where(e == 0, m * 2.0 ** (-bias - 2), (1 + m / 8) * 2.0 ** (e - bias))


def fp8_oracle(x, fnuz, dmax, sat):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    nan, neg = np.isnan(x), np.signbit(x).astype(np.int64)
    ax = np.where(nan, 0.0, np.abs(x))
    if sat:
        ax = np.minimum(ax, dmax)
    grid = fp8_magnitudes(fnuz)
    code = nearest_even(grid, np.minimum(ax, grid[-1]))
    bad = nan | (code == len(grid) - 1)
    if fnuz:
        out = np.where(bad, 0x80, np.where(code == 0, 0, code | (neg << 7)))
    else:
        out = np.where(nan, 0x7F, np.where(bad, 0x7F | (neg << 7), code | (neg << 7)))
    return out.astype(np.uint8)


E2M1_GRID = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)


def e2m1_oracle(x, half_up=False):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    nan, neg = np.isnan(x), np.signbit(x).astype(np.int64)
    code = nearest_even(E2M1_GRID, np.where(nan, 6.0, np.minimum(np.abs(x), 6.0)), half_up)
    return np.where(nan, 7, code | (neg << 3)).astype(np.uint8)


def int_oracle(x, rne, lo, hi):
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    r = np.rint(x) if rne else np.trunc(x)
    return np.where(np.isnan(x), 0, np.clip(np.nan_to_num(r, nan=0.0), lo, hi)).astype(np.int8)


def _log2_parts(a):
    """floor(log2 a), and whether a is a power of two, for finite a > 0 (float64)."""
    m, e = np.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    return e - 1, m == 0.5


def e8m0_oracle(amax, mode, max_pos, emax):
    a32 = np.abs(np.asarray(amax, dtype=np.float32))
    a = a32.astype(np.float64)
    out = np.zeros(a.shape, dtype=np.int64)
    pos = np.isfinite(a) & (a > 0)
    fl, pow2 = _log2_parts(np.where(pos, a, 1.0))
    clampb = lambda e: np.clip(e, -127, 127) + 127  # noqa: E731
    if mode in (QF_E8M0_FLOOR, QF_E8M0_CEIL):
        e = fl if mode == QF_E8M0_FLOOR else fl + (~pow2)
        out = np.where(pos, clampb(e - emax), 0)
        out = np.where(np.isinf(a), 254, out)
    elif mode == QF_E8M0_EVEN:
        r = ((a32.view(np.uint32).astype(np.uint64) + 0x200000) & 0xFF800000).astype(np.uint32)
        rv = r.view(np.float32).astype(np.float64)
        rpos = np.isfinite(rv) & (rv > 0)
        rfl, _ = _log2_parts(np.where(rpos, rv, 1.0))
        out = np.where(rpos, clampb(rfl - emax), np.where(np.isinf(rv), 254, 0))
    elif mode == QF_E8M0_ROUNDUP:
        q32 = a32 / np.float32(max_pos)  # numpy fp32 division: correctly rounded
        q = q32.astype(np.float64)
        qpos = np.isfinite(q) & (q > 0)
        qfl, qpow2 = _log2_parts(np.where(qpos, q, 1.0))
        ceil = qfl + (~qpow2)
        normal = np.where(qpos & (q >= 2.0 ** -126), np.minimum(ceil + 127, 255), 0)
        out = np.where(qpos & (q < 2.0 ** -126), 1, normal)
        out = np.where(np.isfinite(q), out, 255)
    elif mode == QF_E8M0_RNE_LEGACY:
        v = (a32 * np.float32(2.0 ** -emax)).astype(np.float64)
        vpos = np.isfinite(v) & (v > 0)
        vfl, _ = _log2_parts(np.where(vpos, v, 1.0))
        frac = np.where(vpos, v / np.exp2(np.maximum(vfl, -126.0)), 0.0)  # 1.m, or 0.m below 2^-126
        normal = vfl + 127 + (frac - 1 >= 0.5)  # c10 RNE: the implied bit is odd, ties go up
        sub = (v > 2.0 ** -127).astype(np.int64)  # implied bit 0: the tie 2^-127 stays down
        out = np.where(vpos & (v >= 2.0 ** -126), normal, np.where(vpos, sub, 0))
        out = np.where(np.isfinite(v), out, 255)
    return np.where(np.isnan(a), 255, out).astype(np.uint8)


def e8m0_edge_values(max_pos):
    k = np.arange(-149, 128, dtype=np.float64)
    base = [np.exp2(k), 1.5 * np.exp2(k), 1.75 * np.exp2(k), 1.25 * np.exp2(k),
            max_pos * np.exp2(k), 0.75 * max_pos * np.exp2(k)]
    v = np.concatenate(base)
    v = v[(v > 0) & (v < 3.4e38)].astype(np.float32)
    v = np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(0))])
    return np.concatenate([v, np.abs(SPECIALS), f32([2, 3, 0x400000, 0x7FFFFF, 0x600000])])
