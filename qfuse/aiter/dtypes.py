"""``aiter.dtypes`` (AITER's ``aiter/utility/dtypes.py``): the torch dtypes AITER's API
names.

``fp8`` is the e4m3 flavour of the GPU the code runs on, as in AITER: ``float8_e4m3fnuz``
on gfx942 (MI300), ``float8_e4m3fn`` on gfx950 and every other target. Where AITER falls
back to ``torch.uint8`` (an unknown arch: NVIDIA, the CPU), qfuse uses the OCP
``float8_e4m3fn`` instead, so quantised tensors keep a real fp8 dtype.
``QFUSE_AITER_ARCH=gfx942`` (or ``gfx950``) picks the flavour explicitly, e.g. to produce
MI300 data on another machine.
"""
from __future__ import annotations

import os

import torch

__all__ = ["get_gfx", "get_dtype_fp8", "fp8", "fp4x2", "fp8_e8m0", "i4x2", "fp16", "bf16",
           "fp32", "u32", "i32", "i16", "i8", "u8", "i64", "u64", "str2dtype", "d_dtypes"]

#: the arches whose fp8 is e4m3fnuz (AITER's ``defaultDtypes``)
_FNUZ_ARCHES = ("gfx942",)


def get_gfx() -> str:
    """The AMD arch AITER would see (``gfx942``, ``gfx950``, ...); ``""`` elsewhere."""
    forced = os.environ.get("QFUSE_AITER_ARCH")
    if forced:
        return forced
    if torch.cuda.is_available() and getattr(torch.version, "hip", None):
        name = getattr(torch.cuda.get_device_properties(0), "gcnArchName", "")
        return name.split(":")[0]
    return ""


def get_dtype_fp8() -> torch.dtype:
    return torch.float8_e4m3fnuz if get_gfx() in _FNUZ_ARCHES else torch.float8_e4m3fn


_u8 = torch.uint8
fp8 = get_dtype_fp8()
fp4x2 = getattr(torch, "float4_e2m1fn_x2", _u8)
fp8_e8m0 = getattr(torch, "float8_e8m0fnu", _u8)
i4x2 = getattr(torch, "int4", _u8)
fp16 = torch.float16
bf16 = torch.bfloat16
fp32 = torch.float32
u32 = torch.uint32
i32 = torch.int32
i16 = torch.int16
i8 = torch.int8
u8 = torch.uint8
i64 = torch.int64
u64 = torch.uint64

d_dtypes = {"fp8": fp8, "fp8_e8m0": fp8_e8m0, "fp16": fp16, "bf16": bf16, "fp32": fp32,
            "i4x2": i4x2, "fp4x2": fp4x2, "u32": u32, "i32": i32, "i16": i16, "i8": i8,
            "u8": u8, "i64": i64, "u64": u64}


def str2dtype(name: str) -> torch.dtype:
    """AITER's ``str2dtype``: a dtype by its short name (``"fp8"``, ``"bf16"``, ...)."""
    return d_dtypes[name]
