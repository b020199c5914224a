"""Launching rendered kernels: needs torch and triton, not the compiler.

* ``triton_kernel.py`` - :class:`TritonKernel`, the kernel object: loads the module, binds
  and checks torch tensors against the KernelSource, launches (the interpreter for CPU
  tensors), cross-compiles;
* ``fastpath.py`` - :class:`BoundLaunch` (:func:`bind_launch`): a launch bound once per
  input signature, re-run with new tensors through the compiled kernel's own launcher;
* ``one_launch.py`` - a dynamic per-tensor scale and its row kernel as one launch where
  the tensor fits one program (chosen by the runner at bind time);
* ``workspace.py`` - zeroed workspaces of self-resetting kernels, one per stream;
* ``loader.py`` - generated module text -> an imported module (in the cache directory);
* ``cross_compile.py`` - ptx/cubin and amdgcn/hsaco for a target, without a GPU.

Triton's private API (the launcher call, the driver, hooks, the interpreter, ASTSource)
is reached only through ``..triton_adapter``.
"""
from .fastpath import BoundLaunch, bind_launch
from .triton_kernel import TritonKernel

__all__ = ["TritonKernel", "BoundLaunch", "bind_launch"]
