"""The MX quantisers behind ``per_1x32_f4_quant``, ``per_1x32_mx_quant_hip`` and the
Triton ``dynamic_mxfp4_quant`` functions: bind AITER's arguments to ``mx.qp``."""
from __future__ import annotations

import torch

from ...dialect.options import E8M0Mode
from .. import _args as A
from .. import dtypes
from .._errors import AiterArgumentError
from .._pipes import pipeline

__all__ = ["ROUND_MODES", "e8m0_mode", "scaling_mode", "quantise_mxfp4", "quantise_mxfp8",
           "quantise_mxfp4_moe_sort"]

#: AITER's ``MxScaleRoundMode`` integers (aiter/utility/mx_types.py) -> qfuse's E8M0 modes
ROUND_MODES = {0: E8M0Mode.FLOOR, 1: E8M0Mode.ROUNDUP, 2: E8M0Mode.EVEN, 3: E8M0Mode.CEIL}


def e8m0_mode(func: str, round_mode) -> E8M0Mode:
    """An ``MxScaleRoundMode`` (or its int) as qfuse's E8M0 mode."""
    try:
        mode = ROUND_MODES.get(int(round_mode))
    except (TypeError, ValueError):
        mode = None
    if mode is None:
        raise AiterArgumentError(
            f"{func}: invalid round_mode={round_mode!r}; expected 0 (RoundDown/FLOOR), "
            f"1 (RoundUp/RCEIL), 2 (Even) or 3 (Ceil), or an MxScaleRoundMode")
    return mode


def scaling_mode(func: str, name) -> E8M0Mode:
    """The E8M0 mode a Triton ``scaling_mode`` string names (AITER has only ``"even"``)."""
    try:
        return E8M0Mode(name)
    except ValueError:
        raise AiterArgumentError(f"{func}: scaling_mode must be one of "
                                 f"{', '.join(E8M0Mode)}, got {name!r}") from None


def _rows(func: str, x: torch.Tensor, multiple: int = 32) -> torch.Tensor:
    """x as 2-D rows; its last dim a multiple of ``multiple`` (32: whole 1x32 MX blocks;
    4: AITER's Triton ``dynamic_mxfp4_quant``, whose last block may be partial)."""
    A.float_dsl(func, "x", x)
    what = "1x32 MX blocks" if multiple == 32 else \
        "AITER's (N // 2) % 2 == 0; a partial last 1x32 block is allowed"
    A.need(x.dim() >= 1 and x.shape[-1] % multiple == 0 and x.shape[-1] > 0, func,
           f"the last dim of x must be a positive multiple of {multiple} ({what}), got "
           f"shape {tuple(x.shape)}")
    return A.rows2d(x)


def quantise_mxfp4(func: str, kind: str, x, mode: E8M0Mode, shuffle: bool = False,
                   pad: int = 0, multiple: int = 32) -> tuple:
    """``(packed codes [rows, N/2] u8, E8M0 scale [rows, ceil(N/32)] u8)``; with
    ``shuffle`` the scale is ``e8m0_shuffle``'d (padded to (256, 8) multiples with
    ``pad``); ``multiple`` the width rule (see ``_rows``)."""
    x2 = _rows(func, x, multiple)
    name = "mxfp4_shuffle" if shuffle else "mxfp4"
    return pipeline("mx", name, kind, X=A.FLOAT_DSL[x.dtype], MODE=str(mode), PAD=str(pad))(x2)


def quantise_mxfp8(func: str, kind: str, x, quant_dtype, mode: E8M0Mode,
                   shuffle: bool = False) -> tuple:
    """``(fp8 codes [rows, N], E8M0 scale [rows, N/32] u8)`` (MXFP8)."""
    x2 = _rows(func, x)
    q = A.quant_dsl(func, "quant_dtype", quant_dtype,
                    {k: v for k, v in A.QUANT_DSL.items() if k != torch.int8})
    name = "mxfp8_shuffle" if shuffle else "mxfp8"
    return pipeline("mx", name, kind, X=A.FLOAT_DSL[x.dtype], Q=q, MODE=str(mode))(x2)


def quantise_mxfp4_moe_sort(func: str, x, sorted_ids, num_valid_ids, token_num: int,
                            topk: int, mode: E8M0Mode) -> tuple:
    """``(x_fp4 [M, N/2] u8, sorted scales [round_up(R, 32), round_up(ceil(N/32), 8)] u8)``
    of ``fused_dynamic_mxfp4_quant_moe_sort`` (``mx.qp``'s ``mxfp4_moe_sort``).

    The sorted scales: position ``i < num_valid_ids`` of ``sorted_ids`` (``token | slot <<
    24``) holds the E8M0 bytes of x's row ``token * topk + slot`` (``token`` with
    ``topk = 1``), a zero row (bytes 0) when ``token >= token_num`` or the slot is outside
    ``[0, topk)``; every position ``>= num_valid_ids`` is a zero row too (AITER leaves
    whole 32-row tiles past it unwritten). Laid out as ``e8m0_shuffle`` does, rows padded
    to 32: the first ``round_up(R, 32)`` rows of the DSL's ``shuffle`` output (one
    contiguous prefix of it)."""
    A.float_dsl(func, "x", x)
    A.tensor(func, "x", x, dims=(2,))
    m, n = x.shape
    A.need(n % 4 == 0, func, f"the last dim of x must be a multiple of 4 ((N // 2) % 2 == 0), "
           f"got {n}")
    # AITER's second host assertion, (N_i // 2) % 2 == 0 with N_i = cdiv(N, 32): the sort
    # kernel moves scale bytes in pairs of 2-column u32 words, so it takes 1, 4, 5, 8, 9, ...
    # scale columns and not 2, 3, 6, 7, ... (N = 64 or 200 fails there, N = 28, 156, 256 run)
    g = -(-n // 32)
    A.need((g // 2) % 2 == 0, func, f"x's last dim N = {n} gives ceil(N / 32) = {g} scale "
           f"columns; AITER's kernel needs (ceil(N / 32) // 2) % 2 == 0 (ceil(N / 32) % 4 "
           f"in {{0, 1}}: N <= 32, or 97..160, 225..288, ...)")
    for name, v in (("token_num", token_num), ("topk", topk)):
        A.need(isinstance(v, int) and not isinstance(v, bool), func,
               f"{name} must be an int, got {v!r}")
    A.need(topk >= 1, func, f"topk must be >= 1, got {topk}")
    A.need(0 <= token_num < (1 << 24), func, f"token_num must be in [0, 2**24) (the token "
           f"field of a sorted id has 24 bits), got {token_num}")
    A.need(token_num * topk <= m, func, f"x must hold token_num * topk = {token_num * topk} "
           f"rows (one per token and slot), got shape {tuple(x.shape)}")
    A.tensor(func, "sorted_ids", sorted_ids, dims=(1,))
    idt = {torch.int32: "i32", torch.int64: "i64"}.get(sorted_ids.dtype)
    A.need(idt is not None, func, f"sorted_ids must be int32 or int64, got "
           f"{sorted_ids.dtype}")
    A.tensor(func, "num_valid_ids", num_valid_ids)
    A.need(num_valid_ids.numel() >= 1 and not num_valid_ids.is_floating_point(), func,
           f"num_valid_ids must be an integer tensor holding the count, got "
           f"{num_valid_ids.dtype} of shape {tuple(num_valid_ids.shape)}")
    A.same_device(func, x=x, sorted_ids=sorted_ids, num_valid_ids=num_valid_ids)
    r = sorted_ids.shape[0]
    # positions past the count read the sentinel token_num, a zero row (as AITER's masked
    # load of sorted_ids); a device-side select, no host synchronisation
    pos = torch.arange(r, device=sorted_ids.device)
    ids = torch.where(pos < num_valid_ids.reshape(-1)[:1], sorted_ids,
                      torch.full_like(sorted_ids, token_num))
    run = pipeline("mx", "mxfp4_moe_sort", "triton", X=A.FLOAT_DSL[x.dtype], MODE=str(mode),
                   TOPK=str(topk), I=idt)
    q, s = run(x, x[: token_num * topk], ids)
    rows = -(-r // 32) * 32
    return q, s.reshape(-1)[: rows * s.shape[1]].view(rows, s.shape[1])


def as_fp4x2(t: torch.Tensor) -> torch.Tensor:
    return t.view(dtypes.fp4x2)


def as_e8m0(t: torch.Tensor) -> torch.Tensor:
    return t.view(dtypes.fp8_e8m0)
