"""The kernel lowerings that ``qf-lower-loops`` and ``qf-map-gpu`` look up, by level.

The passes own the module walk (which functions are kernels, what the pipeline functions
become: :mod:`.bufferize`); how one kernel's stages become upstream ops is a backend's
knowledge (the ROCDL backend: one lowering per stage, its ``HANDLERS``), and a backend
sits above the passes (tests/test_layering.py). So the lowering is looked up here, in a
table that the layer which sees both fills: :func:`qfuse.runtime.lowering.install`
registers the ROCDL backend's kernel renderer, and the runtime and the CLI call it
before running these passes (the tables are like MLIR's dialect registry: the passes
name what they need, the registration provides it).

A lowering is ``fn(kernel, space, target) -> dict``: ``kernel`` the TypedPipeline of one
kernel function (:func:`qfuse.dialect.reader.read_function`), ``space`` its
``qf.space``, ``target`` a target string (``hip:gfx942``) or None (the loop level), and
the dict:

* ``text``: the lowered function as MLIR text: a ``func.func`` taking the kernel's
  parameters, then its outputs, as memrefs (destination-passing style); at the ``gpu``
  level a ``gpu.func ... kernel``; for a host step (``host``) a private declaration;
* ``host``: true for a step the runtime runs between kernels (``all_reduce``);
* ``grid`` (``rows`` / ``blocks``), ``rows_arg`` (the argument whose dim 0 counts the
  rows), ``block`` (threads per block) and ``max_blocks``: the launch rule, which the
  ``gpu`` level writes into the pipeline's ``gpu.launch_func``.
"""
from __future__ import annotations

from typing import Callable

from ..errors import QfuseError

__all__ = ["LEVELS", "register_kernel_lowering", "kernel_lowering", "registered"]

#: the levels a kernel is lowered to: the loop nest, the gpu dialect
LEVELS = ("loops", "gpu")
_TABLE: dict = {}


def register_kernel_lowering(level: str, fn: Callable) -> None:
    """Make ``fn`` the kernel lowering of ``level`` (the last registration wins)."""
    if level not in LEVELS:
        raise ValueError(f"unknown lowering level {level!r} (levels: {', '.join(LEVELS)})")
    _TABLE[level] = fn


def registered(level: str) -> bool:
    return level in _TABLE


def kernel_lowering(level: str, pass_name: str) -> Callable:
    """The registered lowering of ``level``; a QfuseError naming the fix when none is."""
    fn = _TABLE.get(level)
    if fn is None:
        raise QfuseError(f"{pass_name}: no kernel lowering is registered for the {level} "
                         f"level: call qfuse.runtime.lowering.install() first (qfuse opt, "
                         f"qfuse ir and the runtime do)")
    return fn
