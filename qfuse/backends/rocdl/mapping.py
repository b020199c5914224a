"""Where a kernel's loops run: the CPU loop nest, or the GPU (blocks over rows, threads
over columns).

The renderer (:mod:`.kernel`) writes every kernel once against this interface; the loop
form (``qfuse ir --emit loops``, what the CPU twin runs) and the GPU form (``--emit gpu``)
differ only here:

=====================  ==============================  =======================================
                       :class:`Loops`                  :class:`Gpu`
=====================  ==============================  =======================================
wrapper                ``func.func`` (C interface)     ``gpu.module`` / ``gpu.func ... kernel``
row index              ``scf.for`` over the rows       ``gpu.block_id x`` (one block per row)
parallel column loop   ``scf.for lb to ub``            ``scf.for lb + tid*step to ub step 256*step``
its reductions         the loop's iter_args            iter_args, then ``gpu.all_reduce``
row-level stores       as written                      by thread 0 only (``scf.if``)
=====================  ==============================  =======================================

A grid-wide kernel (``tensor_amax``) loops over the rows inside one program (one block
on the GPU) and reduces across threads once at the end.
"""
from __future__ import annotations

from contextlib import contextmanager

from .emit import Emitter

__all__ = ["Loops", "Gpu", "BLOCK"]

#: Threads per block: a multiple of the wavefront (64 on CDNA) and of the warp (32).
BLOCK = 256

_ALL_REDUCE = {"maximumf": "maximumf", "addf": "add"}


class Loops:
    """The loop nest that the CPU twin runs through MLIR's ExecutionEngine."""

    name = "loops"
    gpu = False

    def wrap(self, fname: str, args: str, body: str) -> str:
        return (f"func.func @{fname}({args}) attributes {{llvm.emit_c_interface}} {{\n"
                f"{body}\n    return\n  }}")

    def module(self, funcs: list) -> str:
        return "module {\n  " + "\n  ".join(funcs) + "\n}\n"

    def setup(self, e: Emitter) -> None:
        pass

    @contextmanager
    def rows(self, e: Emitter, count: str):
        row = e.fresh("row")
        with e.block(f"scf.for {row} = {e.idx(0)} to {count} step {e.idx(1)} {{"):
            yield row

    def par_bounds(self, e: Emitter, lb: str, step: int) -> tuple:
        return lb, e.idx(step)

    def combine(self, e: Emitter, value: str, op: str) -> str:
        return value

    @contextmanager
    def leader(self, e: Emitter):
        yield

    def grid(self, space: str) -> str:
        return "1"


class Gpu(Loops):
    """The same kernel on the ``gpu`` dialect, outlined into a ``gpu.module``."""

    name = "gpu"
    gpu = True

    def wrap(self, fname: str, args: str, body: str) -> str:
        return (f"gpu.func @{fname}({args}) kernel attributes "
                f"{{known_block_size = array<i32: {BLOCK}, 1, 1>}} {{\n{body}\n"
                f"      gpu.return\n    }}")

    def module(self, funcs: list) -> str:
        return ("module attributes {gpu.container_module} {\n  gpu.module @qfuse_kernels {\n    "
                + "\n    ".join(funcs) + "\n  }\n}\n")

    def setup(self, e: Emitter) -> None:
        self.tid = e.op("gpu.thread_id x", "tid")

    @contextmanager
    def rows(self, e: Emitter, count: str):
        yield e.op("gpu.block_id x", "row")

    def par_bounds(self, e: Emitter, lb: str, step: int) -> tuple:
        start = e.bin("addi", lb, e.bin("muli", self.tid, e.idx(step), "index"), "index")
        return start, e.idx(BLOCK * step)

    def combine(self, e: Emitter, value: str, op: str) -> str:
        return e.op(f"gpu.all_reduce {_ALL_REDUCE[op]} {value} uniform {{}} : (f32) -> (f32)")

    @contextmanager
    def leader(self, e: Emitter):
        first = e.cmpi("eq", self.tid, e.idx(0), "index")
        with e.block(f"scf.if {first} {{"):
            yield
