"""The Triton backend: fused kernels (TypedPipelines) -> Triton source -> launch / cross-compile.

* :func:`render_kernel` (``render.py``) - a kernel in the ``row``, ``tensor_amax`` or ``tile``
  space -> :class:`KernelSource` (module text, argument roles, constexpr and grid rules);
* :class:`TritonKernel` (``launch.py``) - binds torch tensors and launches (CPU tensors run in
  the interpreter, bit exact) or cross-compiles (``compile``);
* :func:`run_pipeline` / :func:`run_kernels` / :func:`sub_pipeline` (``run.py``).

Device helpers: ``numerics.py`` (``qf_*``: the exact numerics) and ``lib.py`` (``qft_*``).
"""
from .kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec, TritonConfig
from .codegen import infer_space, render_kernel
from .launch import TritonKernel
from .run import compiled, run_kernels, run_pipeline, sub_pipeline

__all__ = ["render_kernel", "infer_space", "KernelSource", "KernelArg", "TensorSpec",
           "ScalarSpec", "TritonConfig", "TritonKernel", "run_pipeline", "run_kernels",
           "sub_pipeline", "compiled"]
