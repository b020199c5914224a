"""The reference backend behind the :class:`~qfuse.backends.base.Backend` seam.

It compiles nothing: each kernel function of the fused module runs stage by stage
through the torch implementations (:func:`~qfuse.backends.reference.interpreter.run_pipeline`)
on whatever device its inputs are, so it serves every target. A pipeline compiled
without the passes (no compiler installed, e.g. from a bundle) has no kernel steps and
runs its checked program; the fused kernels give the same bits.
"""
from __future__ import annotations

from typing import Optional

from ..base import Backend, Target
from .interpreter import run_pipeline

__all__ = ["ReferenceBackend", "ReferenceRunner"]


class ReferenceBackend(Backend):
    name = "reference"
    version = "1"
    runs_uncompiled = True

    def supports(self, target: Target) -> bool:
        return True

    def target_for(self, device: Target) -> Target:
        return Target("cpu", "ref")          # torch runs it on any device

    def compile_kernel(self, kernel, space: str, target: Target):
        return None                       # the kernel's program is the artifact

    def runner(self, compiled, aliases: dict) -> "ReferenceRunner":
        return ReferenceRunner(compiled, aliases)

    def run(self, tp, inputs: dict, device=None) -> dict:
        """Run a checked program eagerly; outputs by return name."""
        return run_pipeline(tp, inputs, device=device)


class ReferenceRunner:
    """Runs a compiled pipeline's kernels in order, interpreting each."""

    needs_contiguous = False               # torch indexes any strides

    def __init__(self, compiled, aliases: dict):
        self.cp = compiled
        self.aliases = aliases             # {cache_write result: cache parameter}

    def has(self, key) -> bool:
        return False                       # nothing is bound per signature

    def run_seen(self, key, inputs: dict) -> Optional[dict]:
        return None

    def set_configs(self, lookup) -> None:
        """No launch configs: the reference backend launches nothing."""

    def run(self, inputs: dict, key=None, config=None, interpret=None, dims=None) -> dict:
        return self._write_back(self._run(inputs), inputs)

    def _run(self, inputs: dict) -> dict:
        cp = self.cp
        if not cp.steps:
            return run_pipeline(cp.program, inputs)
        env = dict(inputs)
        for step in cp.steps:
            params = [p.value.name for p in step.program.params]
            outs = run_pipeline(step.program, {p: env[n] for p, n in zip(params, step.inputs)})
            for name, value in zip(step.outputs, outs.values()):
                env[name] = value
        return {ret: env[val] for ret, val in cp.returns}

    def _write_back(self, outs: dict, inputs: dict) -> dict:
        """Reference stages return fresh caches: copy them into the caller's, which the
        call then returns (a KV cache is updated in place on every backend)."""
        by_value = {val: ret for ret, val in self.cp.returns}
        for value_name, param in self.aliases.items():
            ret = by_value.get(value_name)
            if ret is not None and ret in outs:
                inputs[param].copy_(outs[ret])
                outs[ret] = inputs[param]
        return outs
