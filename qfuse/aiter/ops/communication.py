"""``aiter.ops.communication`` on ``torch.distributed`` and a qfuse pipeline: the
all-reduce of a tensor-parallel partial sum, then the fused residual add + RMSNorm +
SmoothQuant + per-token int8 quantisation (``norm.qp``).

AITER runs this as one asm kernel over its custom all-reduce (IPC buffers, AMD only);
qfuse runs ``torch.distributed.all_reduce`` (NCCL on GPUs, gloo on the CPU) on a copy of
``input`` in its own dtype, then the pipeline. The sum's rounding and order are the
collective's (exact where the partial sums are); every rank gets the same result
because every rank runs the same pipeline on the same reduced tensor. The norm
numerics are ``rmsnorm2d_fwd_with_add_smoothquant``'s (opus): the fp32 sum
``reduced + residual_in`` (rounded into ``residual_out``), RMSNorm in fp32, ``* weight +
bias``, ``* xscale``, ``yscale = amax / 127``, ``out = y * (1 / yscale)`` rounded to
nearest even (an all-zero row: scale 0, codes 0). Backend: hip.
"""
from __future__ import annotations

import torch

from .. import _args as A
from .norm import OPUS, _bind

__all__ = ["all_reduce_rmsnorm_quant"]


def all_reduce_rmsnorm_quant(input: torch.Tensor, residual_in: torch.Tensor,
                             xscale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                             epsilon: float, group=None):
    """All-reduce ``input [M, N]`` over the process group, add ``residual_in``, RMSNorm
    with ``weight`` (+ ``bias``, may be None), SmoothQuant ``xscale [N]``, per-token int8.
    Returns ``(out [M, N] int8, residual_out [M, N] input dtype, y_scale [M, 1] fp32)``.
    ``group`` (qfuse's addition): the ``torch.distributed`` group, default the world
    (AITER uses its tensor-parallel group). Collective: every rank must call it."""
    import torch.distributed as dist
    func = "all_reduce_rmsnorm_quant"
    A.tensor(func, "input", input)
    if not (dist.is_available() and dist.is_initialized()):
        raise A.AiterArgumentError(f"{func}: torch.distributed is not initialised (call "
                                   f"torch.distributed.init_process_group first)")
    reduced = input.clone(memory_format=torch.contiguous_format)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM, group=group)
    # the outputs' shapes and dtypes, for _bind's checks (no memory: the pipeline's own
    # outputs are returned)
    out = torch.empty(reduced.shape, dtype=torch.int8, device="meta")
    outs, m = _bind(func, out, reduced, out, weight, epsilon, OPUS, xscale=xscale,
                    residual_in=residual_in, residual_out=reduced, rms_bias=bias)
    return (outs["q"].view(reduced.shape), outs["res_out"].view(reduced.shape),
            outs["s"].view(m, 1))
