"""Device helpers of the renderer itself (prefix ``qft_``): storage conversions and amax.

The numeric helpers (``qf_*``: division, sqrt, fp8/int/E2M1/E8M0 codes, bf16 rounding)
live in ``numerics.py``; these are the small bit moves the generated code needs around
loads and stores. They avoid the interpreter's lossy float casts (bf16 -> fp32 flushes
subnormals) by working on bits, which is also free on the GPU.
"""
import triton
import triton.language as tl


@triton.jit
def qft_bf16_to_f32(bits):
    """bf16 bits (int16 storage) -> the exact fp32 value."""
    return (bits.to(tl.int32) << 16).to(tl.float32, bitcast=True)


@triton.jit
def qft_f32_to_bf16(v):
    """An fp32 value that is exactly representable in bf16 -> its bf16 bits (int16)."""
    return (v.to(tl.int32, bitcast=True) >> 16).to(tl.int16)


@triton.jit
def qft_abs_bits(v):
    """|v| as int32 bits: non-negative floats order as ints; NaN sorts above +inf."""
    return v.to(tl.int32, bitcast=True) & 0x7FFFFFFF


@triton.jit
def qft_amax(v, mask, AXIS: tl.constexpr):
    """max |v| over AXIS (kept as size 1) of the lanes in ``mask``; NaN if any lane is NaN."""
    bits = tl.where(mask, qft_abs_bits(v), 0)
    return tl.max(bits, axis=AXIS, keep_dims=True).to(tl.float32, bitcast=True)


@triton.jit
def qft_amax_bits_all(v, mask):
    """max |v| bits over a whole 2-D block (a scalar int32), for atomic tensor amax."""
    bits = tl.where(mask, qft_abs_bits(v), 0)
    return tl.max(tl.max(bits, axis=1), axis=0)


@triton.jit
def qft_sum(v, mask, AXIS: tl.constexpr):
    """Sum over AXIS (kept) of the lanes in ``mask`` (fp32; order unspecified)."""
    return tl.sum(tl.where(mask, v, 0.0), axis=AXIS, keep_dims=True)


@triton.jit
def qft_group_amax(v, mask, BM: tl.constexpr, B: tl.constexpr, K: tl.constexpr):
    """[BM, B] (or broadcastable) -> [BM, B // K] amax of each K-group of columns (masked
    lanes count as 0, so a partial last group uses only its real elements)."""
    bits = tl.broadcast_to(tl.where(mask, qft_abs_bits(v), 0), (BM, B))
    return tl.max(tl.reshape(bits, (BM, B // K, K)), axis=2).to(tl.float32, bitcast=True)


@triton.jit
def qft_to_groups(v, BM: tl.constexpr, B: tl.constexpr, K: tl.constexpr):
    """[BM, B] (or broadcastable) -> [BM, B // K, K]: one K-group per middle index."""
    return tl.reshape(tl.broadcast_to(v, (BM, B)), (BM, B // K, K))


@triton.jit
def qft_amax_bits(v, mask, AXIS: tl.constexpr):
    """max |v| bits over AXIS (kept), as int32 (for atomics; NaN sorts above +inf)."""
    return tl.max(tl.where(mask, qft_abs_bits(v), 0), axis=AXIS, keep_dims=True)


@triton.jit
def qft_code_to_f32(q, KIND: tl.constexpr):
    """Stored codes -> their exact fp32 value. KIND 0: fp8 e4m3fn, 1: fp8 e4m3fnuz (both as
    uint8 bits; NaN codes give NaN), 2: int8. Bit arithmetic, so the interpreter (whose fp8
    casts are wrong for NaN and lack fnuz in 3.7) agrees with the GPU."""
    if KIND == 2:
        return q.to(tl.float32)
    c = q.to(tl.int32) & 0xFF
    e = (c >> 3) & 0xF
    m = c & 7
    sign = (c >> 7) << 31
    if KIND == 0:
        normal = ((e + 120) << 23) | (m << 20)
        sub = (m.to(tl.float32) * 0.001953125).to(tl.int32, bitcast=True)      # m * 2^-9
        nan = (c & 0x7F) == 0x7F
    else:
        normal = ((e + 119) << 23) | (m << 20)
        sub = (m.to(tl.float32) * 0.0009765625).to(tl.int32, bitcast=True)     # m * 2^-10
        nan = c == 0x80
    bits = tl.where(e == 0, sub, normal) | sign
    return tl.where(nan, 0x7FC00000, bits).to(tl.float32, bitcast=True)
