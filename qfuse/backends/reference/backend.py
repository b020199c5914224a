"""Registers the reference backend with ``qfuse.backends.base`` (``get_backend("reference")``).

It compiles nothing: a pipeline runs stage by stage through the torch implementations
(:func:`~qfuse.backends.reference.interpreter.run_pipeline`), on whatever device its
inputs are, so it serves every target.
"""
from __future__ import annotations

from ..base import Backend, Target, register
from .interpreter import run_pipeline

__all__ = ["ReferenceBackend"]


@register
class ReferenceBackend(Backend):
    name = "reference"
    platforms = ("cpu", "cuda", "hip")
    version = "1"

    def supports(self, target: Target) -> bool:
        return True

    def run(self, tp, inputs: dict, device=None) -> dict:
        """Run a TypedPipeline eagerly; outputs by return name."""
        return run_pipeline(tp, inputs, device=device)
