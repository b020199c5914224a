"""Device helpers of the renderer itself (prefix ``qft_``): storage conversions and amax.

The numeric helpers (``qf_*``: division, sqrt, fp8/int/E2M1/E8M0 codes, bf16 rounding)
live in ``numerics.py``; these are the small bit moves the generated code needs around
loads and stores. They avoid the interpreter's lossy float casts (bf16 -> fp32 flushes
subnormals) by working on bits, which is also free on the GPU.
"""
import triton
import triton.language as tl

from .numerics_trace import _amd_target, _nv_target

# whether the compile target is AMD, for a generated kernel's constexpr branch
qft_amd_target = _amd_target


@triton.jit
def qft_bf16_to_f32(bits):
    """bf16 bits (int16 storage) -> the exact fp32 value: the bits shifted up by 16.

    On NVIDIA two neighbouring bf16 share a 32-bit register as loaded; one instruction
    each widens them (low: ``shl 16``; high: ``and 0xffff0000``). Written as an int16 ->
    int32 conversion, ptxas first sign-extends the high half (PRMT) and then shifts it,
    and adds register moves: ~1.7 instead of 1 instruction per element. (Blocks of an odd
    element count, a [BLOCK_M, 1] column of one row, take the shift.)"""
    if _nv_target() and bits.numel % 2 == 0:
        return tl.inline_asm_elementwise(
            "{ shl.b32 $0, $2, 16; and.b32 $1, $2, 0xffff0000; }", "=r,=r,r", [bits],
            dtype=tl.float32, is_pure=True, pack=2)
    else:
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
def qft_sum_sq_exact(u):
    """sum_j u_j * u_j over axis 1 (kept), for a [BM, B] block whose squares are exact in
    fp32 and whose masked lanes hold 0 (u widened from a bf16 / f16 load with other=0).

    An exact square makes fma(u, u, acc) = RN(acc + u * u), the same step as the product
    then the sum, so each thread folds four neighbouring squares into one fma chain
    (1.25 instead of 2 instructions per element; the sum's order is unspecified anyway).
    bf16 squares are exact down to |u| = 2^-67 (below, u * u leaves fp32's normal range)."""
    BM: tl.constexpr = u.shape[0]
    B: tl.constexpr = u.shape[1]
    if B >= 4:
        e, o = tl.split(tl.reshape(u, (BM, B // 2, 2)))
        e0, e1 = tl.split(tl.reshape(e, (BM, B // 4, 2)))
        o0, o1 = tl.split(tl.reshape(o, (BM, B // 4, 2)))
        p = tl.fma(e0, e0, tl.fma(o0, o0, tl.fma(e1, e1, o1 * o1)))
        return tl.sum(p, axis=1, keep_dims=True)
    else:
        return tl.sum(u * u, axis=1, keep_dims=True)


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


@triton.jit
def qft_slot_is_last(slots_ptr, slot, token, n_tokens, BLOCK: tl.constexpr):
    """Whether no token after ``token`` has the same ``slot`` (``[BLOCK_M, 1]`` int64 each)
    among ``slots[0:n_tokens]``: the later of two tokens with one slot wins it. A scan of
    every slot, for the small token counts where a claim launch would cost more."""
    later = slot < -1                      # all False (every slot compared is >= 0)
    for start in range(0, n_tokens, BLOCK):
        j = start + tl.arange(0, BLOCK)[None, :]
        other = tl.load(slots_ptr + j, mask=j < n_tokens, other=-1).to(tl.int64)
        hit = (other == slot) & (j > token) & (j < n_tokens)
        later = later | (tl.max(hit.to(tl.int32), axis=1, keep_dims=True) > 0)
    return ~later
