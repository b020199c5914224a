"""The Triton backend: fused kernels (TypedPipelines) -> Triton source -> launch / cross-compile.

Three layers, each importing only those below it (tests/test_layering.py checks that no
two modules import each other):

* ``codegen/`` - code generation: :func:`render_kernel` turns a kernel in the ``row``,
  ``tensor_amax``, ``tile`` or ``cache_block`` space into a :class:`KernelSource` (module
  text, argument roles, constexpr and grid rules). ``render.py`` dispatches to one module
  per iteration space (``row.py``, ``tensor_amax.py``, ``tile.py``, ``cache_block.py``);
  ``emit.py`` is the emitter they share (given an ``EmitContext``), ``stages_*.py``,
  ``stores.py`` and ``slot_claims.py`` lower the stages, ``assemble.py`` writes the module.
  Needs the checked program (``qfuse.dialect``), not Triton.
* the device library - ``numerics.py`` (``qf_*``: the exact numerics of
  docs/semantics.md, with ``numerics_codes.py`` and the trace-time ``numerics_trace.py``)
  and ``lib.py`` (``qft_*``: storage conversions, amax): the ``@triton.jit`` helpers every
  generated module imports. They stay at the package root because their import paths
  (``from qfuse.backends.triton.numerics import ...``) are part of the generated text, so
  of every KernelSource key, cache entry, golden source and bundle already built.
* ``launch/`` - launching: :class:`TritonKernel` (``triton_kernel.py``: binds torch
  tensors, checks them, launches; CPU tensors run in the interpreter, bit exact),
  ``fastpath.py`` (a launch bound once per signature), ``workspace.py``, ``loader.py``
  (module text -> imported kernel) and ``cross_compile.py``. Needs no compiler: a bundle
  launches with torch and triton alone.

Below them: ``kernel.py``, the plain-data contract (:class:`KernelSource`,
:class:`TritonConfig`) that codegen writes and launch and the runtime read, and
``triton_adapter.py``, the one module that uses Triton's private API (the launcher call,
the driver, launch hooks, the interpreter, cross-compilation, trace-time builtins; triton
3.6 .. 3.9). On top: ``run.py`` (:func:`run_pipeline` / :func:`run_kernels` /
:func:`sub_pipeline`: render and launch, for tests and the reference comparison).
"""
from .codegen import infer_space, render_kernel
from .kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec, TritonConfig
from .launch import TritonKernel
from .run import compiled, run_kernels, run_pipeline, sub_pipeline

__all__ = ["render_kernel", "infer_space", "KernelSource", "KernelArg", "TensorSpec",
           "ScalarSpec", "TritonConfig", "TritonKernel", "run_pipeline", "run_kernels",
           "sub_pipeline", "compiled"]
