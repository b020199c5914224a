"""qfuse across ranks: the ``all_reduce`` stage's group binding and its fused paths.

* :func:`use_group` binds a pipeline's group name (``all_reduce(x, tp)``) to a
  torch.distributed ProcessGroup for the calls inside a ``with`` block (``world``, the
  default group, needs no binding);
* :class:`FusedAllReduce` runs a pipeline ``all_reduce -> norm -> quant`` with the
  one-shot kernel at decode sizes (symmetric memory, CUDA) and the two-step path above
  :data:`ONESHOT_MAX_BYTES`; both sum in rank order, so both give the same bits;
* :mod:`.oneshot` generates the one-shot kernel from the pipeline's fused row kernel.

docs/multi-gpu.md: the design, the numerics and what has run where.
"""
from ..backends.collective import use_group
from .fused import ONESHOT_MAX_BYTES, FusedAllReduce
from .oneshot import OneShotKernel, peer_table, plan_oneshot

__all__ = ["use_group", "FusedAllReduce", "ONESHOT_MAX_BYTES", "OneShotKernel", "peer_table",
           "plan_oneshot"]
