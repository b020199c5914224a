"""Small helpers shared by the reference stage implementations."""
from __future__ import annotations

from typing import Union

import torch

Scalar = Union[float, int, bool, torch.Tensor]

FLOAT_TORCH = (torch.bfloat16, torch.float16, torch.float32)


def f32(t: torch.Tensor) -> torch.Tensor:
    """Exact widening to fp32 (bf16 / f16 / f32 / fp8 inputs)."""
    return t.to(torch.float32)


def scalar_f32(v: Scalar, device=None) -> torch.Tensor:
    """A scalar operand (Python number or 0-d / 1-element tensor) as a 0-d fp32 tensor.

    A Python float is rounded to fp32 first (RNE), so ``x * 0.1`` multiplies by f32(0.1)."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"expected a scalar, got a tensor of shape {tuple(v.shape)}")
        return v.reshape(()).to(device=device if device is not None else v.device,
                                dtype=torch.float32)
    return torch.tensor(float(v), dtype=torch.float32, device=device)


def as_f32_operand(v, device=None) -> torch.Tensor:
    """A tensor operand widened to fp32, or a scalar operand as a 0-d fp32 tensor."""
    if isinstance(v, torch.Tensor) and v.dim() > 0:
        return f32(v if device is None else v.to(device))
    return scalar_f32(v, device)


def byte_view(t: torch.Tensor) -> torch.Tensor:
    """1-byte tensors (fp8) as uint8 so indexing/where work on every device."""
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e4m3fnuz):
        return t.view(torch.uint8)
    return t


def from_byte_view(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.view(dtype) if t.dtype != dtype else t


def zero_rows(out: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``out`` with rows (dim 0) where ``valid`` is False set to zero (any dtype)."""
    b = byte_view(out)
    mask = valid.reshape((-1,) + (1,) * (b.dim() - 1))
    b = torch.where(mask, b, torch.zeros((), dtype=b.dtype, device=b.device))
    return from_byte_view(b, out.dtype)


def abs_amax(t: torch.Tensor, dim, keepdim: bool = False) -> torch.Tensor:
    """``max |t|`` over ``dim`` (an int or a tuple); 0 where that extent is empty, as for an
    all-zero range (torch refuses to reduce an empty dim)."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    a = t.abs()
    if any(a.shape[d] == 0 for d in dims):
        shape = [1 if (k in dims or k - a.dim() in dims) else n for k, n in enumerate(a.shape)]
        z = torch.zeros(shape, dtype=a.dtype, device=a.device)
        return z if keepdim else z.squeeze(dims)
    return a.amax(dim=dims, keepdim=keepdim)
