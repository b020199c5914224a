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
its reductions         the loop's iter_args            iter_args, then a block reduction
row-level stores       as written                      by thread 0 only (``scf.if``)
=====================  ==============================  =======================================

The block reduction (amax: ``maximumf``, sums: ``addf``) is written out rather than left
to ``gpu.all_reduce``: a butterfly of ``gpu.shuffle xor`` within each subgroup (the
target's wave: 64 lanes on gfx942 / gfx950, ``ds_bpermute`` / DPP; 32 on sm_90,
``shfl.sync.bfly``), lane 0 of each subgroup writes its result to workgroup memory, and
after a barrier every thread combines the ``256 / wave`` partials in subgroup order.
Every lane ends with the same bits: each butterfly step combines a pair of lanes with a
commutative op (``a + b == b + a`` and ``maximumf`` are exact in IEEE), and the last step
reads the partials in one order. NaN propagates (``maximumf``).

A grid-wide kernel (``tensor_amax``) strides over the rows (:meth:`Loops.grid_rows`: all
of them on the CPU; on the GPU block ``b`` of ``G`` takes rows ``b, b + G, ...``, with
``G = min(rows, GRID_BLOCKS)``, at least 1, computed alike by the kernel and the
launcher: :func:`grid_blocks`), reduces across its threads once, then across the grid
(:meth:`Loops.grid_amax`). On the GPU that is one launch with a zeroed workspace of
:data:`WORKSPACE_WORDS` ``i32`` (the GPU function's last argument): thread 0 of each
block does ``atomic umax`` of its amax's bits into word 0 (``|x|`` is non-negative, so
its fp32 bits order as unsigned integers, and NaN's bits sort above inf's: NaN
propagates), then ``atomic add 1`` on word 1; the block that draws the last ticket reads
word 0 (an atomic read) and writes the kernel's outputs. The atomics are ``acq_rel``
(``memref.atomic_rmw``): each block's max precedes its ticket, so the last ticket sees
every max. The max is exact in any order, so the result is the CPU twin's.
"""
from __future__ import annotations

from contextlib import contextmanager

from .emit import Emitter

__all__ = ["Loops", "Gpu", "BLOCK", "GRID_BLOCKS", "WORKSPACE_WORDS", "grid_blocks"]

#: Threads per block: a multiple of the wavefront (64 on CDNA) and of the warp (32).
BLOCK = 256
#: Blocks of a grid-wide amax at most (each takes every GRID_BLOCKS-th row)
GRID_BLOCKS = 1024
#: i32 words of the grid-wide amax's workspace: the amax's bits, the block tickets
WORKSPACE_WORDS = 2
_WS = f"memref<{WORKSPACE_WORDS}xi32>"


def grid_blocks(rows: int) -> int:
    """Blocks of a grid-wide amax over ``rows`` rows (at least one: it writes the output)."""
    return max(1, min(int(rows), GRID_BLOCKS))

#: the block reductions the renderer asks for (amax, sums)
_COMBINE = ("maximumf", "addf")


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

    def grid_rows(self, e: Emitter, rows: str) -> tuple:
        """``(first row, step)`` of this program's rows in a grid-wide kernel of ``rows``."""
        return e.idx(0), e.idx(1)

    @contextmanager
    def grid_amax(self, e: Emitter, amax: str):
        """The grid's amax from this program's, where the kernel's outputs are written
        (yields its SSA name): on the CPU the program is the grid."""
        yield amax


class Gpu(Loops):
    """The same kernel on the ``gpu`` dialect, outlined into a ``gpu.module``;
    ``target``'s wave size sets the subgroup of the block reductions (32 without one:
    correct on any wave of at least 32 lanes)."""

    name = "gpu"
    gpu = True

    def __init__(self, target=None):
        self.subgroup = target.warp_size if target is not None and target.is_gpu else 32
        self.partials = 0          # workgroup slots the block reductions use (0: none)
        self.workspace = False     # a grid-wide amax: the workspace argument is appended

    @property
    def _smem_type(self) -> str:
        return f"memref<{BLOCK // self.subgroup}xf32, #gpu.address_space<workgroup>>"

    def wrap(self, fname: str, args: str, body: str) -> str:
        wg = f" workgroup(%wg: {self._smem_type})" if self.partials else ""
        if self.workspace:
            args += f", %ws: {_WS}"
        return (f"gpu.func @{fname}({args}){wg} kernel attributes "
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
        """``op`` over the block's threads (called by every thread: uniform control flow)."""
        if op not in _COMBINE:
            raise AssertionError(f"no block reduction for {op}")
        sg = self.subgroup
        self.partials = BLOCK // sg
        v, off = value, sg // 2
        while off:                               # the subgroup: a butterfly of shuffles
            other = e.fresh("sh")
            valid = e.fresh("ok")
            e.line(f"{other}, {valid} = gpu.shuffle xor {v}, {e.i32(off)}, {e.i32(sg)} : f32")
            v = e.bin(op, v, other, "f32")
            off //= 2
        lane = e.bin("remui", self.tid, e.idx(sg), "index")
        slot = e.bin("divui", self.tid, e.idx(sg), "index")
        e.line("gpu.barrier")                    # the slots' last readers are done
        with e.block(f"scf.if {e.cmpi('eq', lane, e.idx(0), 'index')} {{"):
            e.line(f"memref.store {v}, %wg[{slot}] : {self._smem_type}")
        e.line("gpu.barrier")
        acc = e.op(f"memref.load %wg[{e.idx(0)}] : {self._smem_type}")
        for i in range(1, self.partials):        # the subgroups' partials, in order
            part = e.op(f"memref.load %wg[{e.idx(i)}] : {self._smem_type}")
            acc = e.bin(op, acc, part, "f32")
        return acc

    @contextmanager
    def leader(self, e: Emitter):
        first = e.cmpi("eq", self.tid, e.idx(0), "index")
        with e.block(f"scf.if {first} {{"):
            yield

    def grid_rows(self, e: Emitter, rows: str) -> tuple:
        # the block count as the launcher computes it (grid_blocks), not gpu.grid_dim:
        # on AMD that reads the dispatch packet through ockl, a device library
        capped = e.bin("minui", rows, e.idx(GRID_BLOCKS), "index")
        self.blocks = e.bin("maxui", capped, e.idx(1), "index")
        return e.op("gpu.block_id x", "blk"), self.blocks

    @contextmanager
    def grid_amax(self, e: Emitter, amax: str):
        self.workspace = True
        with self.leader(e):
            bits = e.bitcast(amax, "f32", "i32")
            e.op(f"memref.atomic_rmw maxu {bits}, %ws[{e.idx(0)}] : (i32, {_WS}) -> i32")
            ticket = e.op(f"memref.atomic_rmw addi {e.i32(1)}, %ws[{e.idx(1)}] : "
                          f"(i32, {_WS}) -> i32")
            blocks = e.cast("index_cast", self.blocks, "index", "i32")
            last = e.cmpi("eq", ticket, e.bin("subi", blocks, e.i32(1), "i32"))
            with e.block(f"scf.if {last} {{"):
                total = e.op(f"memref.atomic_rmw maxu {e.i32(0)}, %ws[{e.idx(0)}] : "
                             f"(i32, {_WS}) -> i32")
                yield e.bitcast(total, "i32", "f32")
