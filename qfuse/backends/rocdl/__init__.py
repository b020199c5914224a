"""The ROCDL backend: fused kernels lowered through MLIR's upstream dialects.

Each kernel function of the fused module is rendered to loop-level MLIR (``arith``,
``math``, ``memref``, ``scf``: :mod:`.kernel` with one lowering per stage in
:mod:`.stages` and the exact numerics in :mod:`.numerics`), then mapped onto the ``gpu``
dialect (:mod:`.mapping`: blocks over rows, threads over columns, block reductions for
amax and sums) inside a ``gpu.module``. Both steps run as the registered passes
``qf-lower-loops`` and ``qf-map-gpu{target=...}`` (``qfuse/passes``), which look this
backend's kernel lowering up (:mod:`.lowering`, registered by ``qfuse.runtime.lowering``).
From there (:mod:`.lower`):

* ``convert-gpu-to-rocdl`` for gfx942 / gfx950 (native fp8 converts where the chip has
  them), flydsl's ``gpu-module-to-binary`` for AMDGCN, ``ld.lld`` for the hsaco;
* ``convert-gpu-to-nvvm`` for sm_90: PTX, and ptxas for the cubin (the NVVM twin);
* the loop form itself runs on the CPU through MLIR's ExecutionEngine (the CPU twin).

docs/rocdl.md says what is lowered, what has run where, and what is not done yet.
"""
