"""``aiter.ops.communication`` as one qfuse pipeline with an ``all_reduce`` stage: the
all-reduce of a tensor-parallel partial sum, then the fused residual add + RMSNorm + bias
+ SmoothQuant + per-token int8 quantisation (``pipelines/communication.qp``).

AITER runs this as one asm kernel over its custom all-reduce (IPC buffers, AMD only).
qfuse's pipeline compiles to the collective (a host step: torch.distributed, NCCL on
GPUs, gloo on the CPU) and one fused kernel; ``qfuse.distributed.FusedAllReduce`` runs
the same pipeline as one kernel over symmetric memory at decode sizes. The all-reduce
sums the ranks' ``input`` in rank order in fp32 (an all-gather, then ``x_0 + x_1 + ...``)
and rounds the sum to input's dtype, so every rank gets the same bits (AITER's and
NCCL's summation order is their own; the two agree where the partial sums are exact).
The norm numerics are ``rmsnorm2d_fwd_with_add_smoothquant``'s (opus): the fp32 sum
``reduced + residual_in`` (rounded into ``residual_out``), RMSNorm in fp32, ``* weight +
bias``, ``* xscale``, ``yscale = amax / 127``, ``out = y * (1 / yscale)`` rounded to
nearest even (an all-zero row: scale 0, codes 0). Backend: hip.
"""
from __future__ import annotations

from ...backends.collective import use_group
from .. import _args as A
from ._fused import Binding
from .norm import OPUS

__all__ = ["all_reduce_rmsnorm_quant"]

#: The group name the pipeline's all_reduce uses (communication.qp), bound per call.
_GROUP = "tp"


def all_reduce_rmsnorm_quant(input, residual_in, xscale, weight, bias, epsilon, group=None):
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
    b = Binding(func)
    x = b.rows("input", A.rows2d(input), "X", "x")
    m, n = x.shape
    A.tensor(func, "residual_in", residual_in)
    A.need(residual_in.numel() == input.numel() and residual_in.dtype == input.dtype, func,
           f"residual_in must be {tuple(input.shape)} {input.dtype}, got "
           f"{tuple(residual_in.shape)} {residual_in.dtype}")
    b.rows("residual_in", residual_in.reshape(m, n), "X", "res")
    b.vector("weight", weight, n, "W", "w")
    b.scalar("epsilon", epsilon, "eps")
    b.vector("xscale", xscale, n, "S", "xs")
    if bias is not None:
        b.vector("bias", bias, n, "W", "rb")
    b.subs.update(ZERO=str(OPUS.zero), RECIP=str(OPUS.recip), MODE=str(OPUS.int_mode))
    with use_group(_GROUP, group):
        outs = b.run("communication", "all_reduce_norm_quant", "hip")
    return (outs["q"].view(input.shape), outs["res_out"].view(input.shape),
            outs["s"].view(m, 1))
