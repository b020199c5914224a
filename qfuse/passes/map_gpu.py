"""``qf-map-gpu{target=hip:gfx942}``: every kernel function of the fused module mapped onto
the ``gpu`` dialect and outlined into ``gpu.module @qfuse_kernels``, the pipeline
functions on buffers launching them.

Each kernel is handed to the kernel lowering registered for the ``gpu`` level
(:mod:`.lowering`: the ROCDL backend's renderer with its GPU mapping): one block per row
(``gpu.block_id x``), 256 threads striding over the columns, block reductions written
out as subgroup butterflies (the target's wave size: 64 on gfx942 / gfx950, 32 on
sm_90), the chip's native converts. The result is a ``gpu.func ... kernel`` of the same
ABI as the loop level's function (plus a grid-wide amax's workspace). The pipeline
functions (:mod:`.bufferize`) launch each kernel with ``gpu.launch_func`` and its launch
rule, and call a host step's declaration (``all_reduce``) with ``func.call``; the
module is a ``gpu.container_module``. The backend's conversions start from here
(``convert-gpu-to-rocdl`` / ``-nvvm``, serialisation, linking).

Like ``qf-lower-loops`` it starts from the fused module: the GPU form is rendered with
the mapping, not rewritten from the loops.
"""
from __future__ import annotations

from dataclasses import dataclass

from .lower_loops import lower_module

__all__ = ["MapGpuPass"]


@dataclass(frozen=True)
class MapGpuPass:
    target: str = "hip:gfx942"
    name: str = "qf-map-gpu"

    def run(self, module):
        return lower_module(module, "gpu", self.target, f"{self.name}{{target={self.target}}}")
