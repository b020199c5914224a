"""The AMD launcher: the hsaco through the HIP runtime (``hip-python``, imported when an
AMD tensor first runs). It has not run on AMD hardware (docs/rocdl.md): everything it
relies on but the two HIP calls is shared with the NVVM twin, and its argument layout is
tested against the code object's ``amdhsa.kernels`` metadata."""
from __future__ import annotations

import ctypes

import torch

from ...errors import UnsupportedError
from ..base import Target
from .launch_gpu import GpuKernel

__all__ = ["HipKernel"]


def _hip():
    try:
        from hip import hip
    except ImportError:
        raise UnsupportedError("rocdl backend on AMD tensors needs hip-python "
                               "(pip install hip-python)") from None
    return hip


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"HIP error {err}")
    return rest[0] if len(rest) == 1 else rest


class HipKernel(GpuKernel):
    binary_ext = "hsaco"

    def __init__(self, kernel, device: torch.device):
        arch = torch.cuda.get_device_properties(device).gcnArchName.split(":")[0]
        if arch not in ("gfx942", "gfx950"):
            raise UnsupportedError(f"rocdl backend: code objects are built for gfx942 and "
                                   f"gfx950, this GPU is {arch}")
        super().__init__(kernel, device, Target("hip", arch))

    def _load(self, binary: bytes):
        hip = _hip()
        self._module = _check(hip.hipModuleLoadData(binary))
        return _check(hip.hipModuleGetFunction(self._module, self.kernel.name.encode()))

    def _launch(self, blocks: int, threads: int, params: list, stream: int) -> None:
        hip = _hip()
        ptrs = (ctypes.c_void_p * len(params))(*[ctypes.addressof(p) for p in params])
        _check(hip.hipModuleLaunchKernel(self.function, blocks, 1, 1, threads, 1, 1, 0,
                                         stream, ctypes.addressof(ptrs), None))
