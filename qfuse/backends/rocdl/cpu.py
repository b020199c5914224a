"""The CPU twin: a kernel's loop-level IR run by MLIR's ExecutionEngine on torch tensors.

The loops are exactly those the GPU mapping distributes (``qfuse ir --emit loops``), so
the CPU twin checks the lowering's numerics bit for bit in CI, without a GPU. Tensors are
passed as strided memref descriptors built from the tensors themselves (pointer, storage
offset, sizes and strides in elements): strided inputs need no copy.
"""
from __future__ import annotations

import ctypes
import functools

from ...dialect.mlir import PassManager, ir

__all__ = ["LLVM_PIPELINE", "compile_cpu", "CpuKernel", "descriptor"]

#: loops -> the LLVM dialect on the host (math.sqrt, trunc and roundeven become LLVM
#: intrinsics: correctly rounded / exact instructions, never a libm approximation)
LLVM_PIPELINE = ("builtin.module(convert-scf-to-cf, expand-strided-metadata, "
                 "finalize-memref-to-llvm, convert-math-to-llvm, convert-arith-to-llvm, "
                 "convert-cf-to-llvm, convert-func-to-llvm, reconcile-unrealized-casts)")


@functools.lru_cache(maxsize=None)
def _descriptor_class(rank: int):
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}D", (ctypes.Structure,), {"_fields_": fields})


def descriptor(t):
    """The memref descriptor of torch tensor ``t`` (its storage, offset, sizes, strides)."""
    d = _descriptor_class(t.dim())()
    d.allocated = d.aligned = t.untyped_storage().data_ptr()
    d.offset = t.storage_offset()
    for i in range(t.dim()):
        d.sizes[i] = t.shape[i]
        d.strides[i] = t.stride(i)
    return d


class CpuKernel:
    """One kernel JIT-compiled for the host; ``__call__(args)`` takes tensors and Python
    scalars in the kernel's ABI order (:func:`~.kernel.signature`)."""

    def __init__(self, name: str, loops_text: str, specs: list):
        from .toolchain import execution_engine
        self.name, self.specs = name, specs
        self._ctx = ir.Context()
        with self._ctx:
            module = ir.Module.parse(loops_text)
            PassManager.parse(LLVM_PIPELINE).run(module.operation)
            self._engine = execution_engine()(module, opt_level=2)
        self._module = module

    def __call__(self, args: list) -> None:
        keep, ptrs = [], []
        for spec, a in zip(self.specs, args):
            if spec.rank:
                d = descriptor(a)
                keep.append(d)
                ptrs.append(ctypes.pointer(ctypes.pointer(d)))
            else:
                c = ctypes.c_float(float(a)) if spec.dtype in ("f32", "bf16", "f16") \
                    else ctypes.c_int32(int(a))
                keep.append(c)
                ptrs.append(ctypes.pointer(c))
        self._engine.invoke(self.name, *ptrs)


def compile_cpu(name: str, loops_text: str, specs: list) -> CpuKernel:
    return CpuKernel(name, loops_text, specs)
