"""The value sets of the stage options, as enums, and the constants that go with them.

Every enum- or dtype-valued option of the catalog (``qfuse.dialect.stages``) takes its
values from one class here; ``resolve_options`` returns members, so code asks
``opts["granularity"] == Granularity.MX`` or ``Granularity(g).group_size`` instead of
comparing strings, and a misspelt value fails at import time instead of never matching.

Members *are* the strings of the IR attributes (``class X(str, Enum)``): they compare and
hash equal to them, and ``str()`` / ``format()`` give the bare value. The MLIR text, the
JSON program of a bundle, generated Triton comments and error messages are therefore
byte-identical to what plain strings gave, and a value read back from any of them (a
string) equals its member.

The facts that belong to a value live on it (a granularity's group size, a target's
E8M0 constants and integer code range). The constants of the semantics that are not a
value's (the KV-cache scale floors, default eps and amax floor) are named here: the
catalog, the reference semantics and every lowering read them from this module.
"""
from __future__ import annotations

from enum import Enum
from typing import Optional

from .types import DType, dtype

__all__ = ["OptionEnum", "Granularity", "QuantTarget", "FloatDType", "E8M0Mode", "ZeroPolicy",
           "RoundMode", "PackOrder", "Recip", "NormKind", "ResidualSum", "Act", "GeluApprox",
           "RopeStyle",
           "CacheLayout", "CacheQuant", "ScaleLayout", "CacheFloor", "BlockRequant",
           "KV_TOKEN_SCALE_FLOOR",
           "KV_BLOCK_AMAX_FLOOR", "DEFAULT_EPS", "DEFAULT_AMAX_FLOOR"]


class OptionEnum(str, Enum):
    """A closed set of option values; each member is its attribute string."""

    # str() and format() give the value (the Enum defaults would print "Granularity.MX"),
    # so a member prints exactly as the string it replaces.
    __str__ = str.__str__
    __format__ = str.__format__


# ------------------------------------------------------------------ quantisation
class Granularity(OptionEnum):
    """What one scale covers (``scale`` / ``round``)."""
    PER_TENSOR = "per_tensor"
    PER_TOKEN = "per_token"
    PER_1X32 = "per_1x32"
    PER_1X64 = "per_1x64"
    PER_1X128 = "per_1x128"
    PER_128X128 = "per_128x128"
    MX = "mx"

    @property
    def group_size(self) -> Optional[int]:
        """K of the 1xK groups along a row (``per_1xK``, and ``mx``: 1x32 with an E8M0
        scale); None for the other granularities."""
        return _GROUP_SIZES.get(self)

    @property
    def whole_rows(self) -> bool:
        """Whether one scale's amax spans whole rows (per_token: a row; per_tensor: all)."""
        return self in (Granularity.PER_TENSOR, Granularity.PER_TOKEN)


_GROUP_SIZES = {Granularity.PER_1X32: 32, Granularity.PER_1X64: 64, Granularity.PER_1X128: 128,
                Granularity.MX: 32}


class QuantTarget(OptionEnum):
    """The code formats ``scale`` / ``round`` quantise to (qfuse dtype names)."""
    FP8_E4M3FN = "fp8_e4m3fn"
    FP8_E4M3FNUZ = "fp8_e4m3fnuz"
    I8 = "i8"
    FP4_E2M1 = "fp4_e2m1"
    INT4 = "int4"

    @property
    def dtype(self) -> DType:
        return dtype(self.value)

    @property
    def is_fp8(self) -> bool:
        return self in (QuantTarget.FP8_E4M3FN, QuantTarget.FP8_E4M3FNUZ)

    @property
    def is_int(self) -> bool:
        """Integer codes (int8, int4): rounded by ``mode`` and clamped to a code range."""
        return self in _INT_CODES

    @property
    def needs_mx(self) -> bool:
        """E2M1 codes exist only under 1x32 E8M0 block scales."""
        return self is QuantTarget.FP4_E2M1

    @property
    def e8m0(self) -> Optional[tuple]:
        """``(max_pos, emax)`` of an mx target: its largest value and the exponent of the
        largest power of two it holds (fp4_e2m1 (6, 2), fp8_e4m3fn (448, 8),
        fp8_e4m3fnuz (240, 7)); None for a target mx does not quantise to."""
        return _E8M0.get(self)

    def int_bounds(self, dtype_max: float, sat: bool) -> tuple:
        """Clamp bounds of an integer target: ``+-floor(dtype_max)`` within the code range
        (``sat``), or the code range itself (i8: [-128, 127]; int4: [-8, 7])."""
        lo, hi = _INT_CODES[self]
        if sat:
            m = int(float(dtype_max) // 1)
            lo, hi = max(lo, -m), min(hi, m)
        return lo, hi


_E8M0 = {QuantTarget.FP4_E2M1: (6.0, 2), QuantTarget.FP8_E4M3FN: (448.0, 8),
         QuantTarget.FP8_E4M3FNUZ: (240.0, 7)}
_INT_CODES = {QuantTarget.I8: (-128, 127), QuantTarget.INT4: (-8, 7)}


class FloatDType(OptionEnum):
    """Float result dtypes (``cast``, ``norm``)."""
    BF16 = "bf16"
    F16 = "f16"
    F32 = "f32"


#: ``scale(zero=floor)``: the amax floor unless the call gives ``amax_floor``.
DEFAULT_AMAX_FLOOR = 1e-10


class E8M0Mode(OptionEnum):
    """How an mx scale's amax becomes an E8M0 byte (docs/semantics.md)."""
    ROUNDUP = "roundup"
    EVEN = "even"
    RNE_LEGACY = "rne_legacy"
    FLOOR = "floor"
    CEIL = "ceil"


class ZeroPolicy(OptionEnum):
    """The scale of an all-zero row or group."""
    ONE = "one"
    FLOOR = "floor"
    ZERO = "zero"


class RoundMode(OptionEnum):
    """How a quotient rounds to a code (``round``, ``cache_write``): to nearest, ties to
    even (every target); toward zero (integer targets); to nearest, ties away from zero
    (E2M1 only: AITER's MXFP4 MoE-sort kernel rounds half up on the magnitude)."""
    RNE = "rne"
    TRUNC = "trunc"
    HALF_UP = "half_up"

    def check(self, target: "QuantTarget") -> Optional[str]:
        """Why this mode cannot round to ``target`` (None when it can)."""
        if self == RoundMode.TRUNC and not target.is_int:
            return f"mode=trunc applies to i8/int4 only; {target} rounds to nearest"
        if self == RoundMode.HALF_UP and target != QuantTarget.FP4_E2M1:
            return (f"mode=half_up applies to fp4_e2m1 only (AITER's MoE-sort MXFP4 "
                    f"rounding); {target} rounds to nearest even"
                    + (" or by trunc" if target.is_int else ""))
        return None


class PackOrder(OptionEnum):
    """Which 4-bit codes share a byte (``pack``): ``linear`` (byte j holds codes 2j, 2j+1)
    or ``even_odd`` (AITER's ``rearrange_4bit_elements`` of the linear packing: in each
    32-bit word of 8 codes the even codes fill the low 16 bits, the odd ones the high 16)."""
    LINEAR = "linear"
    EVEN_ODD = "even_odd"

    @property
    def word(self) -> int:
        """Codes per unit the order permutes within (1: none; 8: a 32-bit word)."""
        return 8 if self is PackOrder.EVEN_ODD else 1


class Recip(OptionEnum):
    """``x / s`` or ``x * (1 / s)``."""
    DIV = "div"
    MUL_RCP = "mul_rcp"


# ------------------------------------------------------------------ glue and norm
class NormKind(OptionEnum):
    RMS = "rms"
    LAYER = "layer"


#: ``norm``'s eps when a call leaves it out.
DEFAULT_EPS = 1e-6


class ResidualSum(OptionEnum):
    """What a norm with a residual normalises: the fp32 sum, or the sum rounded to x's dtype."""
    FP32 = "fp32"
    ROUNDED = "rounded"


class Act(OptionEnum):
    """The gate activation of ``act_mul``."""
    SILU = "silu"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"


class GeluApprox(OptionEnum):
    NONE = "none"
    TANH = "tanh"


class RopeStyle(OptionEnum):
    """Which columns rotate together: halves (neox) or neighbours (gptj)."""
    NEOX = "neox"
    GPTJ = "gptj"


class MRope(OptionEnum):
    """Multi-section RoPE (Qwen2-VL style): positions ``[3, T]`` (t, h, w rows), each
    rotary frequency ``i < R/2`` reading the row of its section. ``none``: one row of
    positions ``[T]``; ``chunked``: ``i < s_t`` row 0, then ``mrope_h`` frequencies of row
    1, then ``mrope_w`` of row 2 (``s_t = R/2 - h - w``); ``interleaved`` (Qwen3-VL):
    ``i % 3 == 1 and i < 3 h`` row 1, ``i % 3 == 2 and i < 3 w`` row 2, else row 0."""
    NONE = "none"
    CHUNKED = "chunked"
    INTERLEAVED = "interleaved"

    def rows(self) -> int:
        """Rows of the positions tensor."""
        return 1 if self == MRope.NONE else 3


__all__ += ["MRope"]


# ------------------------------------------------------------------ KV cache
class CacheLayout(OptionEnum):
    """Physical layouts of a paged KV cache (docs/semantics.md, "cache layouts")."""
    KEY = "key"                # [NB, H, D/X, BS, X]
    VALUE = "value"            # [NB, H, D, BS]
    VALUE_ASM = "value_asm"    # [NB, H, BS/X, D, X]
    FLASH = "flash"            # [NB, BS, H, D]
    PRESHUFFLE = "preshuffle"  # [NB, BS/X, H, D/X, X, X]: 16x16 MFMA tiles (AITER indexer)

    @property
    def axes(self) -> dict:
        """The cache dim holding each extent past the block number (dim 0): heads ``H``,
        columns ``D`` (or ``DX`` = D/X), block size ``BS`` (or ``BSX`` = BS/X) and the
        vector ``X``."""
        return _CACHE_AXES[self]

    @property
    def rank(self) -> int:
        return len(self.axes) + 1


_CACHE_AXES = {CacheLayout.KEY: {"H": 1, "DX": 2, "BS": 3, "X": 4},
               CacheLayout.VALUE: {"H": 1, "D": 2, "BS": 3},
               CacheLayout.VALUE_ASM: {"H": 1, "BSX": 2, "D": 3, "X": 4},
               CacheLayout.FLASH: {"BS": 1, "H": 2, "D": 3},
               CacheLayout.PRESHUFFLE: {"BSX": 1, "H": 2, "DX": 3, "XB": 4, "X": 5}}


class CacheQuant(OptionEnum):
    """How ``cache_write`` quantises what it stores."""
    NONE = "none"
    STATIC = "static"
    PER_TOKEN = "per_token"
    PER_BLOCK = "per_block"


class ScaleLayout(OptionEnum):
    """Where per-token / per-block cache scales sit: qfuse's own or AITER asm's layout;
    ``token`` (per_token): ``[NB, BS, H]`` at ``[blk, off, h]`` (AITER's indexer cache)."""
    DEFAULT = "default"
    ASM = "asm"
    TOKEN = "token"


class CacheFloor(OptionEnum):
    """``cache_write``'s floors on a dynamic scale (AITER's HIP kernels vs its torch
    reference): ``floor`` quantises a per-token row with ``max(s, KV_TOKEN_SCALE_FLOOR)``
    and floors a block's amax at ``KV_BLOCK_AMAX_FLOOR`` (HIP); ``none`` uses the scale as
    computed (torch ``pertoken_quant``: a tiny amax gives a tiny scale and full-range
    codes)."""
    FLOOR = "floor"
    NONE = "none"


class BlockRequant(OptionEnum):
    """When ``cache_write(quant=per_block)`` re-quantises a block's stored entries:
    ``grow`` (HIP: the entries before the first new offset, only when the scale grows,
    ``q * (old / new)``) or ``always`` (AITER's torch reference: the whole block is
    dequantised, the new tokens inserted and every entry quantised again with the scale of
    the block's amax)."""
    GROW = "grow"
    ALWAYS = "always"


#: ``cache_write(quant=per_token)`` stores ``s = amax / dtype_max`` and quantises with
#: ``1 / max(s, KV_TOKEN_SCALE_FLOOR)``, so an all-zero token gives codes 0, not NaN.
KV_TOKEN_SCALE_FLOOR = 1e-12
#: ``cache_write(quant=per_block)``: a block's new scale is
#: ``max(KV_BLOCK_AMAX_FLOOR, amax of its new tokens) / dtype_max``.
KV_BLOCK_AMAX_FLOOR = 1e-6


# ------------------------------------------------------------------ collectives
class ReduceOp(OptionEnum):
    """The reduction of ``all_reduce`` (sum only: the tensor-parallel partial sums)."""
    SUM = "sum"


class ReduceOrder(OptionEnum):
    """In which order ``all_reduce`` adds the ranks' tensors (docs/multi-gpu.md):

    * ``rank``: ``x_0 + x_1 + ... + x_{W-1}`` in fp32, left to right (an all-gather, then
      the ordered sum on every rank; the one-shot kernel's order): reproducible bits,
      the same on every rank and on every backend;
    * ``native``: the collective's own order and precision (``torch.distributed.all_reduce``
      in x's dtype: NCCL's ring/tree, gloo's), one collective instead of a gather; equal
      to ``rank`` only where the sums are exact."""
    RANK = "rank"
    NATIVE = "native"


#: ``all_reduce(group=...)``'s default: the default process group of torch.distributed
#: (``qfuse.distributed.use_group`` binds other names at call time).
WORLD_GROUP = "world"

__all__ += ["ReduceOp", "ReduceOrder", "WORLD_GROUP"]
