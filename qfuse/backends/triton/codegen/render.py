"""``render_kernel``: one fused kernel (a TypedPipeline) -> Triton source (:class:`KernelSource`).

The kernel is what the reader gives for a kernel function of the fused module: besides
its stages, its parameters carry what earlier kernels computed for them
(``ParamInfo.scale_of``, the ``qf.scale_of`` argument attribute), which the quantiser's
fast path reads (``EmitContext.scale_facts``).

Each kernel runs in one iteration space, and each space is one module: it builds the
:class:`~.emit.EmitContext` of its kernel functions, lets the emitter lower the stages
(``stages_*.py``, ``stores.py``) and hands the bodies to the shared assembly
(``assemble.py``):

* ``row`` (``row.py``): rows = the outputs' leading dims flattened, whole rows (or column
  chunks) per program; cache writes add a slot-claim launch (``slot_claims.py``);
* ``tensor_amax`` (``tensor_amax.py``): a dynamic ``scale(per_tensor)``, a grid-wide amax;
* ``tile`` (``tile.py``): programs over 128x128 tiles (``per_128x128``);
* ``cache_block`` (``cache_block.py``): ``cache_write(quant=per_block)``, four phases.
"""
from __future__ import annotations

from typing import Optional

from ....dialect.stages import call_space
from ....dialect.typed import TypedPipeline
from ....errors import UnsupportedError
from . import (stages_cache, stages_glue, stages_layout, stages_norm,  # noqa: F401 (register)
               stages_quant)
from . import stages_collective  # noqa: F401 (register)
from ..kernel import SPACES, KernelSource, TritonConfig
from .cache_block import render_cache_block
from .row import column_split_ok, render_row
from .tensor_amax import render_tensor_amax
from .tile import render_tile

__all__ = ["render_kernel", "infer_space", "scale_facts", "column_split_ok"]

RENDERERS = {"row": render_row, "tensor_amax": render_tensor_amax, "tile": render_tile,
             "cache_block": render_cache_block}

#: Steps that are host work between kernels, not Triton kernels (qfuse.passes.plan).
HOST_SPACES = ("collective",)


def infer_space(tp: TypedPipeline) -> str:
    """The space a single-kernel pipeline needs: the first stage whose own iteration space
    (the catalog's :func:`~qfuse.dialect.stages.iteration_space`) is not ``row``."""
    return next((s for s in map(call_space, tp.calls) if s != "row"), "row")


def scale_facts(kernel: TypedPipeline) -> dict:
    """``{scale parameter name: (x parameter name, granularity, dtype_max)}`` from the
    kernel's ``ParamInfo.scale_of`` (stages_quant._bounded_by_own_scale reads it)."""
    return {p.value.name: (p.scale_of.x.name, p.scale_of.granularity, p.scale_of.dtype_max)
            for p in kernel.params if p.scale_of is not None}


def render_kernel(kernel: TypedPipeline, space: Optional[str] = None,
                  config: Optional[TritonConfig] = None) -> KernelSource:
    """Render ``kernel`` (params = inputs, returns = outputs) in ``space`` (inferred when
    None). The text does not depend on ``config`` (block sizes are constexprs). A step in
    a host space (``collective``: all_reduce) renders to None: the runner runs it on the
    host (:mod:`qfuse.backends.collective`) between the kernels."""
    space = space or infer_space(kernel)
    if space in HOST_SPACES:
        return None                   # a host step: the runner runs it, nothing is rendered
    if space not in SPACES:
        raise UnsupportedError(f"triton backend: unknown iteration space {space!r} "
                               f"(supported: {', '.join(SPACES)})", kernel.loc)
    return RENDERERS[space](kernel, scale_facts(kernel))
