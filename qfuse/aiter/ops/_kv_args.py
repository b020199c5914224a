"""Argument binding the KV-cache writes share (``aiter.ops.cache`` and the fused QK-norm +
RoPE / mRoPE cache writes at their own AITER module paths): a cache's DSL dtype, index
dtypes, the k / v scale tensors, and copying a result into a caller's output."""
from __future__ import annotations

import torch

from .. import _args as A
from .. import dtypes
from ._fused import Binding

__all__ = ["QUANT_CACHE", "INDEX", "cache_dsl", "scales", "into"]

#: cache dtypes of a quantised cache (a uint8 cache holds dtypes.fp8 bytes, as in vLLM)
QUANT_CACHE = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e4m3fnuz: "fp8_e4m3fnuz",
                torch.int8: "i8"}
INDEX = {torch.int32: "i32", torch.int64: "i64"}


def cache_dsl(func: str, name: str, cache, quantised: bool) -> tuple:
    """``(the cache as the pipeline reads it, its DSL dtype)``."""
    A.tensor(func, name, cache)
    if quantised:
        if cache.dtype == torch.uint8:
            cache = cache.view(dtypes.fp8)
        dsl = QUANT_CACHE.get(cache.dtype)
        A.need(dsl is not None, func, f"{name} of a quantised cache must be fp8 or int8, got "
               f"{cache.dtype}")
        return cache, dsl
    return cache, A.float_dsl(func, name, cache)


def scales(b: Binding, ks, vs, names=("k_scale", "v_scale")) -> None:
    """Bind the k and v scale tensors (float32) as the pipeline's ``ks`` / ``vs``."""
    for name, param, t in zip(names, ("ks", "vs"), (ks, vs)):
        A.tensor(b.func, name, t)
        A.need(t.dtype == torch.float32, b.func, f"{name} must be float32, got {t.dtype}")
        b.kw[param] = t


def into(func: str, name: str, out, got, shape) -> None:
    """Copy ``got`` into the caller's ``out`` (shape checked)."""
    A.tensor(func, name, out)
    A.need(out.numel() == got.numel(), func, f"{name} must be {list(shape)}, got shape "
           f"{tuple(out.shape)}")
    out.view(got.shape).copy_(got)
