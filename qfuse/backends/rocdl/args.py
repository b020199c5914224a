"""Kernel arguments in launch order, shared by the AMD and NVIDIA launchers.

The ``gpu.func`` takes the kernel ABI (:func:`~.kernel.signature`) and the GPU
conversions expand each memref into its descriptor fields, so a rank-``r`` tensor is
``2 + 1 + 2r`` arguments: the allocated and aligned pointers, the offset, ``r`` sizes and
``r`` strides (in elements), each 8 bytes; an ``f32`` / ``i32`` scalar is 4 bytes. The
AMD kernarg segment lays them out at their natural alignment (what the code object's
``amdhsa.kernels`` metadata says, tested in tests/backends/rocdl/test_isa.py); the CUDA
driver takes one pointer per argument.
"""
from __future__ import annotations

import ctypes
import struct

__all__ = ["flat_args", "kernarg_layout", "pack_kernargs"]


def flat_args(specs: list, values: list) -> list:
    """``[(struct format, value)]``: every kernel argument after memref expansion.
    ``values``: torch tensors (their device pointer, offset, sizes, strides) and scalars."""
    out = []
    for spec, v in zip(specs, values):
        if spec.rank:
            ptr = v.untyped_storage().data_ptr() if v is not None else 0
            out += [("Q", ptr), ("Q", ptr), ("q", v.storage_offset() if v is not None else 0)]
            out += [("q", v.shape[i] if v is not None else 0) for i in range(spec.rank)]
            out += [("q", v.stride(i) if v is not None else 0) for i in range(spec.rank)]
        else:
            out.append(("f" if spec.dtype in ("f32", "bf16", "f16") else "i",
                        0 if v is None else v))
    return out


def kernarg_layout(specs: list) -> list:
    """``[(offset, size)]`` of every flattened argument in the kernarg segment."""
    layout, at = [], 0
    for fmt, _ in flat_args(specs, [None] * len(specs)):
        size = struct.calcsize("<" + fmt)
        at = (at + size - 1) // size * size
        layout.append((at, size))
        at += size
    return layout


def pack_kernargs(specs: list, values: list) -> bytes:
    """The explicit part of the kernarg segment (the runtime appends the hidden part)."""
    flat = flat_args(specs, values)
    buf = bytearray()
    for (fmt, v), (off, size) in zip(flat, kernarg_layout(specs)):
        buf += b"\0" * (off - len(buf))
        buf += struct.pack("<" + fmt, v)
    return bytes(buf)


def ctypes_args(specs: list, values: list) -> list:
    """One ctypes value per flattened argument (the CUDA driver's kernelParams)."""
    kinds = {"Q": ctypes.c_uint64, "q": ctypes.c_int64, "f": ctypes.c_float, "i": ctypes.c_int32}
    return [kinds[fmt](v) for fmt, v in flat_args(specs, values)]
