"""Code generation: a fused kernel (a TypedPipeline) -> Triton module text (KernelSource).

* ``render.py`` - :func:`render_kernel`: infer the kernel's iteration space, dispatch;
* one module per space - ``row.py``, ``tensor_amax.py``, ``tile.py``, ``cache_block.py``:
  each builds the :class:`~.emit.EmitContext` of its kernel function(s) and the grid;
* ``emit.py`` - the :class:`~.emit.Emitter` (lazy column-expression evaluation) and the
  lowering registries; ``stages_*.py``, ``stores.py``, ``slot_claims.py`` - the per-stage
  lowerings registered there;
* ``assemble.py`` - the shared assembly: kernel bodies -> module text and KernelSource.

The text imports the device library (``qfuse.backends.triton.numerics`` / ``.lib``) by
name; nothing here imports Triton.
"""
from .render import column_split_ok, infer_space, render_kernel, scale_facts

__all__ = ["render_kernel", "infer_space", "scale_facts", "column_split_ok"]
