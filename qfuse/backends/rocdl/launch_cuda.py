"""The NVVM twin's launcher: the cubin through the CUDA driver API (``cuda-bindings``,
imported when a CUDA tensor first runs; not a dependency of the CPU path)."""
from __future__ import annotations

import ctypes

import torch

from ...errors import UnsupportedError
from ..base import Target
from .launch_gpu import GpuKernel

__all__ = ["CudaKernel"]


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError:
        raise UnsupportedError("rocdl backend on CUDA tensors needs cuda-bindings "
                               "(pip install cuda-bindings)") from None
    return driver


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver error {err}")
    return rest[0] if len(rest) == 1 else rest


class CudaKernel(GpuKernel):
    binary_ext = "cubin"

    def __init__(self, kernel, device: torch.device):
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) != (9, 0):
            raise UnsupportedError(f"rocdl backend: the NVVM twin is built for sm_90, this "
                                   f"GPU is sm_{major}{minor}")
        torch.cuda.init()                   # a current context for the driver API
        super().__init__(kernel, device, Target("cuda", "sm_90"))

    def _load(self, binary: bytes):
        drv = _driver()
        self._module = _check(drv.cuModuleLoadData(binary))
        return _check(drv.cuModuleGetFunction(self._module, self.kernel.name.encode()))

    def _launch(self, blocks: int, threads: int, params: list, stream: int) -> None:
        drv = _driver()
        ptrs = (ctypes.c_void_p * len(params))(*[ctypes.addressof(p) for p in params])
        _check(drv.cuLaunchKernel(self.function, blocks, 1, 1, threads, 1, 1, 0,
                                  drv.CUstream(stream), ctypes.addressof(ptrs), 0))
