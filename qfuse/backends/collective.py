"""The host step of ``all_reduce``: a torch.distributed collective between kernels.

Every backend runs the same function (the reference interprets ``qf.all_reduce`` with
it; the Triton runner calls it for a ``collective`` step, then launches the fused
kernels that read its result), so the semantics are written once:

* ``order=rank`` (default): every rank all-gathers the ``W`` tensors of its group, then
  sums them in rank order in fp32, ``((x_0 + x_1) + x_2) + ... + x_{W-1}``, each add an
  fp32 add rounded to nearest even, and rounds the sum (RNE) to the result dtype. Every
  rank computes the same additions on the same operands, so every rank gets the same
  bits; the one-shot kernel (:mod:`qfuse.distributed.oneshot`) adds in this order too.
* ``order=native``: ``torch.distributed.all_reduce(SUM)`` on a copy of ``x`` in x's dtype
  (NCCL's ring / tree order, gloo's), then widened or rounded to the result dtype. One
  collective instead of a gather, but the order and the intermediate rounding are the
  collective's: equal to ``rank`` where the partial sums are exact.

Process groups are named in the pipeline (``all_reduce(x, tp)``; ``world`` is the
default group) and bound at call time with :func:`use_group` (a context manager:
``with use_group("tp", group): pipe(...)``), so a compiled pipeline holds no group.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Optional

import torch

from ..dialect.options import WORLD_GROUP, ReduceOp, ReduceOrder
from ..errors import InputError

__all__ = ["use_group", "resolve_group", "check_initialised", "host_all_reduce",
           "ordered_sum"]

_BOUND: contextvars.ContextVar = contextvars.ContextVar("qfuse_groups", default={})


@contextlib.contextmanager
def use_group(name: str, group) -> object:
    """Bind the pipeline group name ``name`` to ``group`` (a torch.distributed
    ProcessGroup, or None for the default group) inside the ``with`` block."""
    if not isinstance(name, str) or not name.isidentifier():
        raise InputError(f"use_group: name must be an identifier (the name the pipeline "
                         f"gives all_reduce), got {name!r}")
    token = _BOUND.set({**_BOUND.get(), name: group})
    try:
        yield group
    finally:
        _BOUND.reset(token)


def check_initialised(what: str = "") -> None:
    """Raise a clear error when this process has no torch.distributed process group
    (``what``: the caller, named first; the interpreter names the stage itself)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        raise InputError(f"{what + ': ' if what else ''}torch.distributed is not initialised on this process: "
                         f"call torch.distributed.init_process_group(...) on every rank "
                         f"before running a pipeline with all_reduce (one process: "
                         f"world_size=1)")


def resolve_group(name: str):
    """The ProcessGroup a pipeline's group name stands for now (None: the default)."""
    check_initialised()
    bound = _BOUND.get()
    if name in bound:
        return bound[name]
    if name == WORLD_GROUP:
        return None
    raise InputError(f"process group {name!r} is not bound: run the pipeline "
                     f"inside `with qfuse.distributed.use_group({name!r}, group):` "
                     f"(bound now: {', '.join(sorted(bound)) or 'none'})")


def ordered_sum(parts: list, out_dtype: torch.dtype) -> torch.Tensor:
    """``((p_0 + p_1) + p_2) + ...`` in fp32, left to right, rounded (RNE) to
    ``out_dtype``: the rank-order sum (an empty list is not a sum: W >= 1)."""
    acc = parts[0].float()
    for p in parts[1:]:
        acc = acc + p.float()
    return acc.to(out_dtype)


def host_all_reduce(x: torch.Tensor, *, group: str = WORLD_GROUP, op=ReduceOp.SUM,
                    order=ReduceOrder.RANK, dtype: Optional[torch.dtype] = None
                    ) -> torch.Tensor:
    """All-reduce ``x`` over the group named ``group`` (see the module docstring): a new
    tensor of ``dtype`` (default x's); ``x`` is not modified. Collective: every rank of
    the group must call it with the same shape and dtype."""
    import torch.distributed as dist
    if ReduceOp(op) != ReduceOp.SUM:
        raise InputError(f"op {op!r} is not supported (sum only)")
    pg = resolve_group(group)
    dtype = dtype or x.dtype
    src = x.contiguous()
    if ReduceOrder(order) == ReduceOrder.NATIVE:
        y = src.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=pg)
        return y.to(dtype)
    parts = [torch.empty_like(src) for _ in range(dist.get_world_size(pg))]
    dist.all_gather(parts, src, group=pg)
    return ordered_sum(parts, dtype)
