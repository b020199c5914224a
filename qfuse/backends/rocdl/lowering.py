"""The ROCDL backend's kernel lowering, as the passes ``qf-lower-loops`` and ``qf-map-gpu``
look it up (:mod:`qfuse.passes.lowering`; ``qfuse.runtime.lowering.install`` registers
:func:`lower_kernel` for both levels).

One kernel function (read into a TypedPipeline) in its ``qf.space`` becomes:

* at the loop level (``target`` None): the ``func.func`` that :mod:`.kernel` renders with
  the :class:`~.mapping.Loops` mapping (the CPU twin runs it);
* at the ``gpu`` level (``target`` a GPU target): the ``gpu.func`` rendered with the
  :class:`~.mapping.Gpu` mapping of that target (its wave size, its native converts),
  with the launch rule the pass writes into the pipeline's ``gpu.launch_func``;
* a host step (``collective``: all_reduce): a private declaration of its ABI (the runtime
  runs it between the kernels).

The backend itself starts from the passes' output (:meth:`.backend.RocdlBackend.
compile_kernel` with ``lowered``) and keeps the conversions below the ``gpu`` level
(:mod:`.lower`).
"""
from __future__ import annotations

from typing import Optional

from ...dialect.types import TensorType
from ...errors import QfuseError
from ..base import parse_target

__all__ = ["lower_kernel", "check_space", "host_declaration", "SPACES", "HOST_SPACES"]

#: iteration spaces this backend lowers and their launch rule (tile: a block per row of
#: the input; cache_block: a block per row of the scales, kernel.rows_param)
SPACES = {"row": "rows", "tensor_amax": "blocks", "tile": "rows", "cache_block": "rows"}
#: steps that are host work between kernels, not kernels (``collective``: all_reduce, run
#: by the runner with the stage's host implementation, as the Triton backend does)
HOST_SPACES = ("collective",)


def check_space(kernel, space: str) -> None:
    """Refuse an iteration space the backend does not lower, naming it and the kernel."""
    if space not in SPACES and space not in HOST_SPACES:
        raise QfuseError(f"rocdl backend: the {space} iteration space is not lowered yet "
                         f"(kernel {kernel.name})", kernel.loc)


def host_declaration(kernel) -> str:
    """``func.func private @name(...)``: a host step's ABI (parameters, then outputs)."""
    from .kernel import memref_type
    types = []
    for v in [p.value for p in kernel.params] + list(kernel.returns):
        t = v.type
        types.append(memref_type(t) if isinstance(t, TensorType) else
                     "f32" if t.dtype.is_float else "i32")
    return f"func.func private @{kernel.name}({', '.join(types)})"


def lower_kernel(kernel, space: str, target: Optional[str] = None) -> dict:
    """``kernel`` lowered to the loop level (``target`` None) or to the ``gpu`` level of
    ``target``: the dict :mod:`qfuse.passes.lowering` describes."""
    from .kernel import render, rows_param
    from .mapping import BLOCK, GRID_BLOCKS, Gpu
    check_space(kernel, space)
    if space in HOST_SPACES:
        return {"text": host_declaration(kernel), "host": True}
    if target is None:
        text = render(kernel, space)
    else:
        t = parse_target(target)
        if not t.is_gpu:
            raise QfuseError(f"rocdl backend: qf-map-gpu needs a GPU target (hip:gfx942, "
                             f"hip:gfx950, cuda:sm_90), not {target}")
        text = render(kernel, space, Gpu(t), t)
    return {"text": text, "host": False, "grid": SPACES[space], "rows_arg": rows_param(kernel),
            "block": BLOCK, "max_blocks": GRID_BLOCKS}
