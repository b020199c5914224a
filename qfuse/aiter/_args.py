"""Argument checks with the errors an AITER user understands: each names the function,
the argument, what was expected and what was given. Also the torch dtype -> DSL dtype
maps the wrappers use to pick a pipeline variant."""
from __future__ import annotations

import functools
from typing import Optional

import torch

from ._errors import AiterArgumentError, AiterUnsupportedError

__all__ = ["FLOAT_DSL", "QUANT_DSL", "float_dsl", "quant_dsl", "tensor", "need", "rows2d",
           "dtype_max", "literal", "unsupported", "same_device", "column_major"]

#: input dtypes a pipeline reads (fp32 math inside)
FLOAT_DSL = {torch.bfloat16: "bf16", torch.float16: "f16", torch.float32: "f32"}
#: quantisation targets of fp8 / int8 entry points
QUANT_DSL = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e4m3fnuz: "fp8_e4m3fnuz",
             torch.int8: "i8"}


def _names(dts) -> str:
    return ", ".join(str(d) for d in dts)


def tensor(func: str, name: str, t, *, dims: Optional[tuple] = None) -> torch.Tensor:
    """``t`` if it is a tensor (of rank in ``dims`` when given)."""
    if not isinstance(t, torch.Tensor):
        raise AiterArgumentError(f"{func}: {name} must be a torch.Tensor, got "
                                 f"{type(t).__name__}")
    if dims is not None and t.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise AiterArgumentError(f"{func}: {name} must be {want}, got shape {tuple(t.shape)}")
    return t


def float_dsl(func: str, name: str, t: torch.Tensor) -> str:
    """The DSL dtype of a float input (bf16 / f16 / f32)."""
    tensor(func, name, t)
    dsl = FLOAT_DSL.get(t.dtype)
    if dsl is None:
        raise AiterArgumentError(f"{func}: {name} must be {_names(FLOAT_DSL)}, got {t.dtype}")
    return dsl


def quant_dsl(func: str, name: str, dt, allowed=QUANT_DSL) -> str:
    """The DSL target of a quant dtype argument (fp8 e4m3fn / e4m3fnuz / int8)."""
    dsl = allowed.get(dt) if isinstance(dt, torch.dtype) else None
    if dsl is None:
        raise AiterArgumentError(f"{func}: {name} must be one of {_names(allowed)}, got {dt}")
    return dsl


def need(cond: bool, func: str, message: str) -> None:
    if not cond:
        raise AiterArgumentError(f"{func}: {message}")


def unsupported(func: str, message: str) -> AiterUnsupportedError:
    return AiterUnsupportedError(f"{func}: {message}")


def same_device(func: str, **tensors) -> None:
    """All given tensors on one device (a pipeline runs on one)."""
    seen = None
    for name, t in tensors.items():
        if t is None:
            continue
        if seen is None:
            seen = (name, t.device)
        elif t.device != seen[1]:
            raise AiterArgumentError(f"{func}: {name} is on {t.device} but {seen[0]} is on "
                                     f"{seen[1]}; move them to one device")


def rows2d(t: torch.Tensor) -> torch.Tensor:
    """``t`` as ``[rows, last dim]`` with a contiguous last dim (a view when it can be)."""
    t2 = t if t.dim() == 2 else t.reshape(-1, t.shape[-1]) if t.dim() else t.reshape(1, 1)
    return t2 if t2.shape[-1] <= 1 or t2.stride(-1) == 1 else t2.contiguous()


@functools.lru_cache(maxsize=None)
def dtype_max(dt: torch.dtype) -> float:
    """AITER's ``get_dtype_max``: the largest finite value of a float or integer dtype."""
    try:
        return float(torch.finfo(dt).max)
    except TypeError:
        return float(torch.iinfo(dt).max)


def literal(value: float) -> str:
    """A float as a DSL number (the shortest text that reads back as the same double)."""
    text = repr(float(value))
    return text if ("." in text or "e" in text) else text + ".0"


def column_major(s: torch.Tensor) -> torch.Tensor:
    """A 2-D ``s`` in AITER's transposed scale buffer, ``torch.empty((G, M)).T``: strides
    ``(1, M)`` whatever the sizes (``s.t().contiguous().t()`` keeps ``s``'s strides when a
    dim has size 1)."""
    out = torch.empty((s.shape[1], s.shape[0]), dtype=s.dtype, device=s.device).t()
    return out.copy_(s)
