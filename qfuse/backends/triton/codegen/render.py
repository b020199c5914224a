"""``render_kernel``: one fused kernel (a TypedPipeline) -> Triton source (:class:`KernelSource`).

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

from ....dialect.typed import TypedPipeline
from ....errors import UnsupportedError
from . import stages_cache, stages_glue, stages_norm, stages_quant  # noqa: F401 (register)
from ..kernel import SPACES, KernelSource, TritonConfig
from .cache_block import render_cache_block
from .row import column_split_ok, render_row
from .tensor_amax import render_tensor_amax, scale_fact
from .tile import render_tile

__all__ = ["render_kernel", "infer_space", "scale_fact", "column_split_ok"]

RENDERERS = {"row": render_row, "tensor_amax": render_tensor_amax, "tile": render_tile,
             "cache_block": render_cache_block}


def infer_space(tp: TypedPipeline) -> str:
    """The space a single-kernel pipeline needs (``row`` unless a stage says otherwise)."""
    for c in tp.calls:
        g = c.options.get("granularity")
        if c.stage == "scale" and g == "per_tensor" and c.operands.get("static") is None:
            return "tensor_amax"
        if c.stage in ("scale", "round") and g == "per_128x128":
            return "tile"
        if c.stage == "cache_write" and c.options.get("quant") == "per_block":
            return "cache_block"
    return "row"


def render_kernel(kernel: TypedPipeline, space: Optional[str] = None,
                  config: Optional[TritonConfig] = None,
                  scale_facts: Optional[dict] = None) -> KernelSource:
    """Render ``kernel`` (params = inputs, returns = outputs) in ``space`` (inferred when
    None). The text does not depend on ``config`` (block sizes are constexprs).
    ``scale_facts``: what earlier kernels of the pipeline computed, see scale_fact."""
    space = space or infer_space(kernel)
    if space not in SPACES:
        raise UnsupportedError(f"triton backend: unknown iteration space {space!r} "
                               f"(supported: {', '.join(SPACES)})", kernel.loc)
    return RENDERERS[space](kernel, dict(scale_facts or {}))
