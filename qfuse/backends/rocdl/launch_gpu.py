"""What the AMD and NVIDIA launchers share: the binary for the device, the grid, and the
argument list. A platform module (:mod:`.launch_hip`, :mod:`.launch_cuda`) only loads a
code object and launches a function (``_load`` / ``_launch``).

Grid: one block of :data:`~.mapping.BLOCK` threads per row of the kernel's rows tensor
(``grid="rows"``; no launch for zero rows), or a single block (``grid="single"``: the
grid-wide amax).
"""
from __future__ import annotations

import torch

from ..base import Target
from .args import ctypes_args
from .mapping import BLOCK

__all__ = ["GpuKernel"]


class GpuKernel:
    binary_ext = ""          # "hsaco" | "cubin"

    def __init__(self, kernel, device: torch.device, target: Target):
        from .lower import build_binaries
        self.kernel, self.device, self.target = kernel, device, target
        self.function = self._load(build_binaries(kernel, target)[self.binary_ext])

    def grid(self, values: list) -> int:
        if self.kernel.grid == "single":
            return 1
        return int(values[self.kernel.rows_arg].shape[0])

    def __call__(self, values: list) -> None:
        blocks = self.grid(values)
        if blocks == 0:
            return
        params = ctypes_args(self.kernel.args, values)
        stream = torch.cuda.current_stream(self.device).cuda_stream
        self._launch(blocks, BLOCK, params, stream)

    def _load(self, binary: bytes):
        raise NotImplementedError

    def _launch(self, blocks: int, threads: int, params: list, stream: int) -> None:
        raise NotImplementedError
