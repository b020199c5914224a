"""``all_reduce``: the sum of a tensor over the ranks of a process group (a host step)."""
from __future__ import annotations

from typing import Optional

import torch

from ....dialect.options import WORLD_GROUP, ReduceOp, ReduceOrder
from ....dialect.types import dtype as qf_dtype
from ...collective import host_all_reduce

__all__ = ["run_all_reduce"]


def run_all_reduce(x: torch.Tensor, *, group: str = WORLD_GROUP, op: str = ReduceOp.SUM,
                   order: str = ReduceOrder.RANK, dtype: Optional[str] = None) -> tuple:
    """``out = round_dtype(((x_0 + x_1) + x_2) + ... + x_{W-1})``: ``x_r`` is rank r's ``x``
    in the group ``group`` (``world``: the default group; other names are bound at call
    time, ``qfuse.distributed.use_group``), widened exactly to fp32; each ``+`` is an fp32
    add (RNE), left to right in rank order (``order=rank``); ``round_dtype`` rounds to
    ``dtype`` (RNE; default x's dtype, ``f32`` keeps the sum). ``order=native``: the
    collective's own order and precision (``torch.distributed.all_reduce`` in x's dtype).
    Every rank gets the same bits (``rank``). Collective: every rank of the group runs it.
    ``op``: sum only. Needs an initialised torch.distributed process group."""
    out = qf_dtype(str(dtype)).torch_dtype() if dtype is not None else None
    return (host_all_reduce(x, group=group, op=op, order=order, dtype=out),)
