"""``aiter.ops.triton.quant.fused_mxfp4_quant`` on qfuse pipelines (``fused_mxfp4.qp``):
RMSNorm / split-K reduce / activation / flatten fused with MXFP4 quantisation, every
optional input and output of AITER's functions.

Numerics (AITER's Triton kernels): norms as in ``fused_fp8_quant``; E8M0 scales in the
``even`` mode (AITER's only one; ``scaling_mode`` may name another E8M0 mode), E2M1 codes
to nearest even, packed two per byte. ``shuffle`` writes the scale in the
``e8m0_shuffle`` layout padded to ``(256, 8)`` multiples with 127 (scale 1), as AITER
does for the padded columns of real rows (its padded rows are left unwritten);
``scale_shuffle_padding`` alone gives that padded buffer unshuffled, padding 127.
Outputs are ``uint8`` like AITER's. The quantised width must be even (AITER's rule; for
``fused_reduce_act_mul_and_mxfp4_quant`` x's last dim a multiple of 4); a partial last
1x32 block (N = 28, 68, 200, as AITER's tests use) is scaled by its real elements, and its
scale byte sits in the ``ceil(N / 32)`` columns (and the shuffled / padded layouts) as
AITER's. Backend: triton.
"""
from __future__ import annotations

from typing import Literal

import torch

from qfuse.aiter import _args as A
from qfuse.aiter.ops._fused import Binding, into
from qfuse.aiter.ops._mx import as_e8m0, as_fp4x2, quantise_mxfp4_moe_sort
from qfuse.aiter.ops._mx import scaling_mode as e8m0_mode

__all__ = ["fused_rms_mxfp4_quant", "fused_flatten_mxfp4_quant",
           "fused_reduce_act_mul_and_mxfp4_quant", "fused_reduce_rms_mxfp4_quant",
           "fused_dynamic_mxfp4_quant_moe_sort"]

_PAD = 127


def _mx_width(b: Binding, name: str, n: int) -> None:
    """AITER's rule: an even width (two E2M1 codes per byte); a partial last 1x32 block is
    scaled by its real elements (AITER's kernels load the rest as 0)."""
    A.need(n % 2 == 0 and n > 0, b.func, f"the last dim of {name} must be even and "
           f"positive (two E2M1 codes per byte), got {n}")


def _layout(b: Binding, shuffle, scale_shuffle_padding) -> bool:
    """Flag ``shuf``; whether the unshuffled scale is to be padded afterwards."""
    b.flag("shuf", shuffle)
    return bool(scale_shuffle_padding) and not shuffle


def _padded(s: torch.Tensor) -> torch.Tensor:
    """``s [M, G]`` in a ``[ceil(M/256)*256, ceil(G/8)*8]`` buffer, padding 127."""
    m, g = s.shape
    out = torch.full((-(-m // 256) * 256, -(-g // 8) * 8), _PAD, dtype=s.dtype,
                     device=s.device)
    out[:m, :g] = s
    return out


def fused_rms_mxfp4_quant(x1: torch.Tensor, x1_weight: torch.Tensor, x1_epsilon: float,
                          x2: torch.Tensor | None = None, x2_weight: torch.Tensor | None = None,
                          x2_epsilon: float = 0.0, res1: torch.Tensor | None = None,
                          shuffle: bool | None = False, scale_shuffle_padding: bool | None = False,
                          output_unquantized_inp1=False, inargs: str = "auto"):
    """``[res1 +] x1 -> RMSNorm -> MXFP4``; ``x2`` is RMS-normalised alone. Returns
    ``((out1_fp4 [M, N1/2] uint8, out1_bs [M, ceil(N1/32)] uint8, padded/shuffled on request),
    out1, out2, out_res1)``. ``inargs``: ``auto`` and ``triton`` run the same pipeline;
    ``gluon`` (AITER's gfx1250 kernel) is refused."""
    b = Binding("fused_rms_mxfp4_quant")
    if inargs == "gluon":
        raise A.unsupported(b.func, "inargs='gluon' (the gfx1250 Gluon kernel) is not "
                            "provided; use 'auto' or 'triton'")
    A.need(inargs in ("auto", "triton"), b.func, f"inargs must be 'auto', 'gluon' or "
           f"'triton', got {inargs!r}")
    m, n = b.norm_input(x1, x1_weight, x1_epsilon, prefix="x1")
    _mx_width(b, "x1", n)
    b.residual(res1, x1, m, n)
    b.second_input(x2, x2_weight, x2_epsilon, m, names=("x2", "x2_weight", "x2_epsilon"))
    b.flag("out1", output_unquantized_inp1)
    pad = _layout(b, shuffle, scale_shuffle_padding)
    out = b.run("fused_mxfp4", "rms_mx", "triton")
    bs = _padded(out["bs"]) if pad else out["bs"]
    return (out["q"], bs), out.get("y1"), out.get("y2"), out.get("res_out")


def fused_flatten_mxfp4_quant(x: torch.Tensor):
    """``x [M, N1, N2]`` (any strides) flattened to ``[M, N1*N2]`` -> MXFP4. Returns
    ``(out [M, N1*N2/2] uint8, out_block_scales [M, ceil(N1*N2/32)] uint8, strides (1, M))``.
    Blocks run over the flattened row (AITER restarts them at every N2 segment, the same
    blocks when ``N2 % 32 == 0``)."""
    b = Binding("fused_flatten_mxfp4_quant")
    A.tensor(b.func, "x", x, dims=(3,))
    b.subs["X"] = A.float_dsl(b.func, "x", x)
    _mx_width(b, "x (flattened)", x.shape[1] * x.shape[2])
    b.kw["x"] = x if x.stride(-1) == 1 or x.shape[-1] <= 1 else x.contiguous()
    out = b.run("fused_mxfp4", "flatten_mx", "triton")
    return out["q"], A.column_major(out["s"])


def fused_reduce_act_mul_and_mxfp4_quant(x: torch.Tensor,
                                         activation: Literal["silu", "gelu", "gelu_tanh"],
                                         x2: torch.Tensor | None = None,
                                         scaling_mode: str = "even", shuffle: bool = False,
                                         scale_shuffle_padding: bool = False,
                                         dtype: float | None = torch.bfloat16):
    """``act(x[..., :N]) * x[..., N:]`` -> MXFP4, after a split-K sum when ``x`` is
    ``[SPK, M, 2N]`` (``x2 [SPK, M, N2]``, if given, is only summed, into ``y2`` of
    ``dtype``). Returns ``((y [M, N/2] uint8, y_scale uint8), y2)``."""
    b = Binding("fused_reduce_act_mul_and_mxfp4_quant")
    split = b.split_k("x", x)
    A.need(split or x2 is None, b.func, "x2 must be None when x is 2-D")
    t = b.rows("x", x, "X", "x", split=split, as_splits=True)
    A.need(t.shape[-1] % 4 == 0, b.func, f"the last dim of x must be a multiple of 4 (gate "
           f"and up halves of an even width), got {t.shape[-1]}")
    _mx_width(b, "the activation output (half of x's last dim)", t.shape[-1] // 2)
    if x2 is not None:
        A.tensor(b.func, "x2", x2, dims=(3,))
        A.need(x2.shape[:2] == x.shape[:2], b.func, f"x2 must be [{x.shape[0]}, "
               f"{x.shape[1]}, N2] like x, got shape {tuple(x2.shape)}")
        b.rows("x2", x2, "X2", "x2", split=True)
        b.out_dtype("dtype", dtype)
    b.activation(activation)
    b.subs["MODE"] = str(e8m0_mode(b.func, scaling_mode))
    pad = _layout(b, shuffle, scale_shuffle_padding)
    out = b.run("fused_mxfp4", "reduce_act_mul_mx", "triton")
    bs = _padded(out["bs"]) if pad else out["bs"]
    return (out["q"], bs), out.get("y2")


def fused_reduce_rms_mxfp4_quant(x1: torch.Tensor, x1_weight: torch.Tensor, x1_epsilon: float,
                                 x2: torch.Tensor | None = None,
                                 x2_weight: torch.Tensor | None = None, x2_epsilon: float = 0.0,
                                 x3: torch.Tensor | None = None, res1: torch.Tensor | None = None,
                                 shuffle: bool | None = False,
                                 scale_shuffle_padding: bool | None = False,
                                 output_unquantized_inp1=False, dtype=None, out3=None):
    """Split-K sum (``x1 [SPK, M, N1]``, ``SPK > 1``; or ``x1 [M, N1]``) -> ``[+ res1]`` ->
    RMSNorm -> MXFP4; ``x2`` (summed likewise) is RMS-normalised alone; ``x3 [SPK, M,
    N3]`` is only summed, into ``out3`` (given or new). Unquantised outputs have ``dtype``
    (default x1's). Returns ``((out1_fp4, out1_bs), out1, out2, out_res1, out3)``."""
    b = Binding("fused_reduce_rms_mxfp4_quant")
    split = b.split_k("x1", x1)
    m, n = b.norm_input(x1, x1_weight, x1_epsilon, split=split, prefix="x1", as_splits=True)
    _mx_width(b, "x1", n)
    b.out_dtype("dtype", x1.dtype if dtype is None else dtype)
    b.residual(res1, x1, m, n)
    spk = x1.shape[0] if split else 1
    b.second_input(x2, x2_weight, x2_epsilon, m, split=split, spk=spk,
                   names=("x2", "x2_weight", "x2_epsilon"), as_splits=True)
    b.summed_input("x3", x3, spk, m)
    b.flag("out1", output_unquantized_inp1)
    pad = _layout(b, shuffle, scale_shuffle_padding)
    out = b.run("fused_mxfp4", "reduce_rms_mx", "triton")
    y3 = into(b.func, out.get("y3"), out3)
    bs = _padded(out["bs"]) if pad else out["bs"]
    return (out["q"], bs), out.get("y1"), out.get("y2"), out.get("res_out"), y3


def fused_dynamic_mxfp4_quant_moe_sort(x: torch.Tensor, sorted_ids: torch.Tensor,
                                       num_valid_ids: torch.Tensor, token_num: int,
                                       topk: int, block_size: int = 32,
                                       scaling_mode: str = "even"):
    """MXFP4 of ``x [M, N]`` with its scales gathered in MoE-sorted order, AITER's Triton
    kernel (``dynamic_mxfp4_quant`` + ``moe_mxfp4_sort`` in one launch).

    Returns ``(x_fp4 [M, N/2] fp4x2, blockscale fp8_e8m0 [round_up(R, 32),
    round_up(ceil(N/32), 8)])``, ``R = len(sorted_ids)``: x's codes in place (E8M0
    ``even`` scales, E2M1 ties away from zero: this kernel kept the pre-#975 rounding),
    and the E8M0 bytes of x's row ``token * topk + slot`` at each sorted position (a
    sorted id packs ``token | slot << 24``; with ``topk = 1`` the row is ``token``), in
    the ``e8m0_shuffle`` layout with rows padded to 32, the kernel's own buffer shape.
    ``x`` holds ``token_num * topk`` rows (one per token and slot) or more.

    Defined results where AITER's are not: a position ``>= num_valid_ids``, a token
    ``>= token_num`` or a slot outside ``[0, topk)`` is a zero row (scale bytes 0; AITER
    reads past x for a bad slot and leaves tiles past ``num_valid_ids`` unwritten); a tiny
    ``|x / scale|`` (below about 2^-32) gives code 0 (AITER's shift wraps). ``N`` must be a
    multiple of 4 with ``(ceil(N / 32) // 2) % 2 == 0`` (AITER's two host assertions, here
    an ``AiterArgumentError`` naming ``x``); a partial last 1x32 group is scaled by its real
    elements.
    Backend: triton."""
    func = "fused_dynamic_mxfp4_quant_moe_sort"
    A.need(isinstance(block_size, int) and block_size > 0 and block_size % 32 == 0, func,
           f"block_size must be a multiple of 32, got {block_size!r}")
    q, s = quantise_mxfp4_moe_sort(func, x, sorted_ids, num_valid_ids, token_num, topk,
                                   e8m0_mode(func, scaling_mode))
    return as_fp4x2(q), as_e8m0(s)
