"""The one adapter to ``torch.distributed._symmetric_memory`` (private torch API): a
buffer every rank of a group allocates and maps, and the table of its peers' addresses.

UNRUN: this module has not run anywhere yet (symmetric memory needs CUDA GPUs with
peer access; the sessions that wrote it had CPUs only). The one-shot kernel it feeds ran
in the Triton interpreter with simulated peers (tests/distributed/test_oneshot.py).
Everything that touches the private API is here, behind :func:`unavailable`'s version
check, so a torch that moves it breaks one file.
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["MIN_TORCH", "unavailable", "SymmetricBuffer"]

#: The oldest torch whose ``_symmetric_memory`` has ``empty``, ``rendezvous`` and
#: ``buffer_ptrs`` as used here (2.6; 2.5 spelt the allocation differently).
MIN_TORCH = (2, 6)


def _version() -> tuple:
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


def unavailable(device: torch.device) -> Optional[str]:
    """Why symmetric memory cannot serve ``device`` here (None: it can)."""
    if _version() < MIN_TORCH:
        return f"torch {torch.__version__} is older than {'.'.join(map(str, MIN_TORCH))}"
    if device.type != "cuda":
        return f"symmetric memory needs CUDA tensors, got a {device.type} tensor"
    try:
        import torch.distributed._symmetric_memory as sm
    except ImportError as e:                    # pragma: no cover (torch builds without it)
        return f"torch.distributed._symmetric_memory does not import ({e})"
    if not all(hasattr(sm, a) for a in ("empty", "rendezvous")):
        return "torch.distributed._symmetric_memory lacks empty / rendezvous"
    return None


class SymmetricBuffer:
    """``[rows, n]`` of ``dtype`` in symmetric memory on every rank of ``group`` (None:
    the default group); ``table``: int64 [W] on the device, entry r the address of rank
    r's buffer. Creating it is collective (every rank of the group, the same shape)."""

    def __init__(self, rows: int, n: int, dtype: torch.dtype, device: torch.device, group=None):
        why = unavailable(device)
        if why is not None:
            raise RuntimeError(f"symmetric memory: {why}")
        import torch.distributed as dist
        import torch.distributed._symmetric_memory as sm
        pg = group if group is not None else dist.group.WORLD
        if hasattr(sm, "enable_symm_mem_for_group"):       # torch < 2.8 needs it first
            sm.enable_symm_mem_for_group(pg.group_name)
        self.tensor = sm.empty(rows, n, dtype=dtype, device=device)
        self.handle = sm.rendezvous(self.tensor, pg)
        base = self.handle.buffer_ptrs[self.handle.rank]
        offset = self.tensor.data_ptr() - base
        self.table = torch.tensor([p + offset for p in self.handle.buffer_ptrs],
                                  dtype=torch.int64, device=device)
        self.rows, self.n, self.dtype = rows, n, dtype

    def fits(self, x: torch.Tensor) -> bool:
        return x.dim() == 2 and x.shape[0] <= self.rows and x.shape[1] == self.n \
            and x.dtype == self.dtype

    def local(self, m: int) -> torch.Tensor:
        """This rank's first ``m`` rows (contiguous: the peers' layout)."""
        return self.tensor[:m]

    def barrier(self) -> None:
        """Every rank's earlier writes to its buffer are visible to every peer (a device
        barrier on the current stream)."""
        self.handle.barrier(channel=0)
