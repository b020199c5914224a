"""Workspaces of self-resetting kernels: zeroed once, reused per stream, never cleared per call.

A ``tensor_amax`` kernel (codegen/tensor_amax.py) leaves its int32 workspace zeroed when
it finishes: its last program reads the amax, stores the scale and writes the zeros back.
So a workspace needs clearing only when it is allocated, and a launch costs no memset
kernel (at decode sizes a memset is a third of a dynamic per-tensor quantisation's time).

Two launches must not share a workspace while both run. Launches on one stream run one
after the other, so :class:`WorkspacePool` hands each stream its own slot of one zeroed
buffer; a CUDA-graph capture gets a slot of its own, never handed out again (a graph
replays its workspace, possibly on another stream than the one it was captured on).
When the slots run out, or when the first launch of a signature happens under capture
(the buffer cannot be allocated and cleared outside the graph then), each launch gets a
freshly zeroed workspace, as before: slower, never wrong.

Large workspaces (a KV-cache write's slot claims hold one int64 per cache slot) are not
preallocated SLOTS times: each stream gets its own buffer when it first launches, and a
capture a fresh one (zeroed inside the graph, so every replay starts clean).
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["WorkspacePool", "SLOTS"]

SLOTS = 64               # streams + captured graphs per kernel signature
_ALIGN = 4               # int32s per slot boundary: 16-byte aligned slots
SHARED_BYTES = 1 << 22   # preallocate SLOTS slots up to this size in all


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


class WorkspacePool:
    """Zeroed int32 workspaces of ``size`` elements on ``device`` for one kernel signature."""

    __slots__ = ("size", "device", "stride", "buffer", "by_stream", "used")

    def __init__(self, size: int, device: torch.device):
        self.size, self.device = int(size), device
        self.stride = -(-max(1, self.size) // _ALIGN) * _ALIGN
        self.buffer: Optional[torch.Tensor] = None
        self.by_stream: dict = {}
        self.used = 0

    def get(self, stream: Optional[int] = None) -> torch.Tensor:
        """The workspace for a launch on ``stream`` (a raw stream handle; None on the CPU)."""
        capturing = _capturing(self.device)
        if not capturing:
            ws = self.by_stream.get(stream)
            if ws is not None:
                return ws
        if SLOTS * self.stride * 4 > SHARED_BYTES:          # one buffer per stream
            if capturing:
                return self._fresh()
            ws = self.by_stream[stream] = self._fresh()
            return ws
        if self.buffer is None:
            if capturing:                   # allocating here would put the memset in the graph
                return self._fresh()
            self.buffer = torch.zeros(SLOTS * self.stride, dtype=torch.int32, device=self.device)
        if self.used >= SLOTS:
            return self._fresh()
        start = self.used * self.stride
        ws = self.buffer[start:start + self.size]
        self.used += 1
        if not capturing:
            self.by_stream[stream] = ws
        return ws

    def _fresh(self) -> torch.Tensor:
        return torch.zeros(self.size, dtype=torch.int32, device=self.device)
