"""``RocdlKernel``: what the ROCDL backend compiles one kernel function into.

It holds the kernel's ABI (:func:`~.kernel.signature`), its launch rule, and its IR at
the two levels every target starts from: the loop form (the CPU twin runs it) and the
``gpu`` form (``convert-gpu-to-rocdl`` / ``-nvvm`` lower it). Binaries for a GPU target
are built from the ``gpu`` form on demand (:mod:`.lower`) and kept in ``binaries``.
``text`` is what the cache shows a human next to the compiled pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RocdlKernel"]


@dataclass
class RocdlKernel:
    name: str
    space: str
    args: list                  # [ArgSpec]: parameters, then outputs
    loops: str                  # loop-level module (func.func, C interface)
    gpu: dict                   # target -> gpu-level module text (native converts differ)
    grid: str                   # "rows": one block per row; "single": one block
    rows_arg: int               # the argument whose dim 0 counts the rows
    binaries: dict = field(default_factory=dict)   # target -> {ext: text or bytes}

    @property
    def text(self) -> str:
        return self.loops
