"""Runs a list of passes over a module, optionally printing the IR after each.

Passes are Python objects with ``name`` and ``run(module) -> module``; every qfuse pass
rewrites the module in place and returns it.
"""
from __future__ import annotations

import sys
from typing import Iterable, Union

from .registry import PIPELINES, get_pass

__all__ = ["run_passes", "resolve_pipeline"]


def resolve_pipeline(pipeline: Union[str, Iterable[str]]) -> list:
    """A pipeline name (``default``), a comma-separated list of pass names, or a list."""
    if isinstance(pipeline, str):
        names = PIPELINES.get(pipeline) or [p.strip() for p in pipeline.split(",") if p.strip()]
    else:
        names = list(pipeline)
    return [get_pass(n)() for n in names]


def run_passes(module, pipeline="default", *, print_after_all=False, out=None):
    """Run the passes in order; with ``print_after_all`` dump the IR after each one."""
    from ..dialect.text import print_module
    out = out or sys.stdout
    for p in resolve_pipeline(pipeline):
        module = p.run(module) or module
        if print_after_all:
            out.write(f"// -----// IR Dump After {p.name} //----- //\n")
            out.write(print_module(module))
            out.write("\n")
    return module
