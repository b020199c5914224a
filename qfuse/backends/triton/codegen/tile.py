"""The ``tile`` space: programs over 128x128 tiles (``per_128x128`` scales and rounding).

A program owns one tile of the 2-D input (grid: tile rows x tile columns, ``TILE = 128``,
fixed by the format); the emitter's prologue gives its rows, columns and tile indices,
every output is stored at the tile (a ``per_128x128`` scale at its tile's entry).
"""
from __future__ import annotations

from ....dialect.options import Granularity
from ....dialect.typed import TypedPipeline
from ..kernel import KernelSource, dim_rule
from .assemble import assemble, scatters, single
from .emit import EmitContext, Emitter, unsupported
from .stores import store_outputs

__all__ = ["render_tile"]


def render_tile(kernel: TypedPipeline, facts: dict) -> KernelSource:
    x = next(c.operands["x"] for c in kernel.calls
             if c.options.get("granularity") == Granularity.PER_128X128)
    em = Emitter(kernel, EmitContext("tile", tile=x, scale_facts=facts))
    writes = scatters(kernel)
    if writes:
        raise unsupported(writes[0], "a cache write in the tile space")
    store_outputs(em, kernel.returns)
    grid = (f"cdiv({dim_rule(x.type.shape[0])}, TILE)", f"cdiv({dim_rule(x.type.shape[1])}, TILE)")
    return assemble(kernel, "tile", single(em, grid))
