"""Launching: kernel objects, the fast path, workspaces, the module loader, cross-compiling."""
from .fastpath import BoundLaunch, bind_launch
from .triton_kernel import TritonKernel

__all__ = ["TritonKernel", "BoundLaunch", "bind_launch"]
