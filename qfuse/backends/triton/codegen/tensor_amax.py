"""The ``tensor_amax`` space: a dynamic ``scale(per_tensor)`` as one grid-wide amax kernel.

The scale's input is evaluated in row space; each program atomically maxes its |v| bits
into an int32 workspace, and the last program to arrive (an atomic counter) turns the
amax into the scale, stores it and zeroes the workspace again (so a workspace is cleared
once, when allocated: launch/workspace.py). The kernel's only output is the scale, so the
next (row) kernel takes it as a plain f32[1] input: no side channel between kernels, and
the zero policy is applied once.

``ONE_PROGRAM`` (a constexpr, 0 in the kernel's own launch): the launcher runs this
kernel as the first half of a single launch with its row kernel when the whole tensor
fits one program (``launch/one_launch.py``, selected at bind time from the shape). Then
the program's own amax is the tensor's: no atomics, no workspace traffic, the same scale
(the max of the same |v| bits; masked lanes count 0, the workspace's start value).
"""
from __future__ import annotations

from ....dialect.stages import call_space
from ....dialect.typed import TypedPipeline
from ....errors import UnsupportedError
from ..kernel import KernelSource, dim_rule
from .assemble import assemble, single
from .emit import EmitContext, Emitter
from .stages_quant import scale_from_amax

__all__ = ["render_tensor_amax"]


def render_tensor_amax(kernel: TypedPipeline, facts: dict) -> KernelSource:
    call = kernel.calls[-1] if kernel.calls else None
    if call is None or call_space(call) != "tensor_amax" or list(kernel.returns) != call.results:
        raise UnsupportedError(
            "triton backend: a tensor_amax kernel ends in a dynamic scale(per_tensor) and "
            "returns only that scale", kernel.loc,
            hint="fuse the pipeline first: qf-fuse puts the amax in its own kernel function "
                 "(qfuse.runtime.compiler.compile_pipeline renders each)")
    x = call.operands["x"]
    dom = tuple(x.type.shape[:-1])
    em = Emitter(kernel, EmitContext("tensor_amax", rows=dom, scale_facts=facts,
                                     constexprs=(("ONE_PROGRAM", "0"),)))
    cols = em.natural(em.base_block(x.type.shape[-1]), x.type.shape[-1])
    xv = em.f32(em.value_at(x, em.domain_lead, cols))
    em.emit("")
    em.stage_comment(call, ": grid-wide amax, then the last program stores the scale")
    part = em.let("part", f"{em.lib('qft_amax_bits_all')}({xv}, rmask & {cols.mask})")
    out = em.out_names[call.results[0]]
    em.emit("if ONE_PROGRAM:")
    with em.indented():             # this program holds the whole tensor (one launch)
        s = scale_from_amax(em, call, em.let("amax", f"{part}.to(tl.float32, bitcast=True)"))
        em.emit(f"tl.store({out}_ptr, {s})")
    em.emit("else:")
    with em.indented():
        _grid_wide(em, call, part, out)
    rows = " * ".join(dim_rule(d) for d in dom) or "1"
    grid = (f"cdiv({rows}, BLOCK_M)",)
    return assemble(kernel, "tensor_amax", single(em, grid), min_programs=1, workspace=2)


def _grid_wide(em: Emitter, call, part: str, out: str) -> None:
    """Every program maxes its part into the workspace; the last to arrive stores the scale."""
    # the counter's acq_rel add releases this program's max and, in the last program,
    # acquires every other's, so the max itself and the final read can be relaxed
    em.emit(f"tl.atomic_max(ws_ptr, {part}, sem=\"relaxed\")")
    done = em.let("arrived", "tl.atomic_add(ws_ptr + 1, 1, sem=\"acq_rel\")")
    em.emit(f"if {done} == tl.num_programs(0) - 1:")
    with em.indented():
        amax = em.let("amax", "tl.atomic_max(ws_ptr, 0, sem=\"relaxed\").to(tl.float32, bitcast=True)")
        s = scale_from_amax(em, call, amax)
        em.emit(f"tl.store({out}_ptr, {s})")
        # every other program is done with the workspace: leave it zeroed for the next launch
        # (the launcher keeps one per stream instead of clearing it before every launch)
        # (plain stores, after a barrier so that no thread's store can pass the atomic read
        # above; the branch is uniform: `arrived` is one value per program)
        em.emit("tl.debug_barrier()")
        em.emit("tl.store(ws_ptr, 0)")
        em.emit("tl.store(ws_ptr + 1, 0)")

