"""Loading a RocdlKernel where the tensors are: the one place that differs per platform.

``load_kernel(kernel, device)`` returns a callable taking the ABI's argument list:
the CPU twin for CPU tensors; the NVVM twin (:mod:`.launch_cuda`) for CUDA tensors; the
HIP launcher (:mod:`.launch_hip`) for AMD tensors (torch built for ROCm). Argument
packing, grids and binaries are shared (:mod:`.args`, :mod:`.lower`).
"""
from __future__ import annotations

import torch

__all__ = ["load_kernel"]


def load_kernel(kernel, device: torch.device):
    if device.type == "cpu":
        from .cpu import compile_cpu
        return compile_cpu(kernel.name, kernel.loops, kernel.args)
    if device.type == "cuda" and getattr(torch.version, "hip", None):
        from .launch_hip import HipKernel
        return HipKernel(kernel, device)
    if device.type == "cuda":
        from .launch_cuda import CudaKernel
        return CudaKernel(kernel, device)
    from ...errors import UnsupportedError
    raise UnsupportedError(f"rocdl backend: no launcher for {device.type} tensors")
