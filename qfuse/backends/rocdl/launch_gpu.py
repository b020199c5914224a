"""What the AMD and NVIDIA launchers share: the binary for the device, the grid, and the
argument list. A platform module (:mod:`.launch_hip`, :mod:`.launch_cuda`) only loads a
code object and launches a function (``_load`` / ``_launch``); the code object is the
kernel's stored one (:meth:`~.artifact.RocdlKernel.code_object`).

Grid: one block of :data:`~.mapping.BLOCK` threads per row of the kernel's rows tensor
(``grid="rows"``; no launch for zero rows), or for a grid-wide amax (``grid="blocks"``)
:func:`~.mapping.grid_blocks` blocks with a zeroed workspace appended to the arguments
(allocated on the launch's stream for each launch, so concurrent launches never share
one).
"""
from __future__ import annotations

import torch

from ..base import Target
from .args import ctypes_args
from .mapping import BLOCK, WORKSPACE_WORDS, grid_blocks

__all__ = ["GpuKernel"]


class GpuKernel:
    binary_ext = ""          # "hsaco" | "cubin"

    def __init__(self, kernel, device: torch.device, target: Target):
        self.kernel, self.device, self.target = kernel, device, target
        # a stored kernel carries its code object: no MLIR here (artifact.py)
        self.function = self._load(kernel.code_object(target))

    def grid(self, values: list) -> int:
        rows = int(values[self.kernel.rows_arg].shape[0])
        return grid_blocks(rows) if self.kernel.grid == "blocks" else rows

    def __call__(self, values: list) -> None:
        blocks = self.grid(values)
        if blocks == 0:
            return
        if self.kernel.grid == "blocks":
            values = list(values) + [torch.zeros(WORKSPACE_WORDS, dtype=torch.int32,
                                                 device=self.device)]
        params = ctypes_args(self.kernel.gpu_args, values)
        self._launch(blocks, BLOCK, params, self._stream())

    def _stream(self) -> int:
        """The raw handle of torch's current stream on the device (CUDA or HIP)."""
        return torch.cuda.current_stream(self.device).cuda_stream

    def _load(self, binary: bytes):
        raise NotImplementedError

    def _launch(self, blocks: int, threads: int, params: list, stream: int) -> None:
        raise NotImplementedError
