"""Run a :class:`CompiledPipeline` on tensors: validate, allocate, launch kernels in order.

Inputs are checked against the program's signature (dtype, rank, symbolic dims the same
everywhere, one device, last dim contiguous, scalar ranges), each with a message naming
the parameter. Kernel outputs are allocated per launch (M is never specialised); a KV
cache (or its scale table) passed in is updated in place and also returned. Needs only
torch and triton.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..backends.reference.interpreter import bind_inputs
from ..dialect.types import ScalarType, TensorType
from ..errors import InputError
from .artifact import CompiledPipeline

__all__ = ["Executor", "validate_inputs"]


def _aliases(cp: CompiledPipeline) -> dict:
    """``{cache_write result value: cache parameter name}`` (in-place outputs)."""
    params = {p.value for p in cp.program.params}
    out = {}
    for c in cp.program.calls:
        if c.stage != "cache_write":
            continue
        for arg, res in (("cache", 0), ("scales", 1)):
            v = c.operands.get(arg)
            if v is not None and v in params and res < len(c.results):
                out[c.results[res].name] = v.name
    return out


def validate_inputs(cp: CompiledPipeline, inputs: dict, *, need_contiguous: bool) -> dict:
    """Check every input (raises InputError naming it); returns the bound symbol sizes."""
    devices = {}
    for p in cp.program.params:
        v = inputs.get(p.value.name)
        if isinstance(v, torch.Tensor):
            devices.setdefault(v.device, p.value.name)
            if need_contiguous and v.dim() and v.shape[-1] > 1 and v.stride(-1) != 1:
                raise InputError(f"{p.value.name}: the last dim must be contiguous "
                                 f"(stride {v.stride(-1)}); rows may be strided, use .contiguous()")
        elif isinstance(p.value.type, ScalarType) and isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"{p.value.name}: must be finite, got {v}")
    if len(devices) > 1:
        (d0, n0), (d1, n1) = list(devices.items())[:2]
        raise InputError(f"inputs are on different devices: {n0} on {d0}, {n1} on {d1}")
    _, syms = bind_inputs(cp.program, inputs)
    for c in cp.program.calls:
        if c.stage in ("scale", "round") and c.options.get("granularity") == "mx":
            n = c.operands["x"].type.shape[-1].eval(syms)
            if n % 32:
                raise InputError(f"{c.operands['x'].name}: mx quantisation needs N % 32 == 0, got "
                                 f"N = {n}", c.loc)
        if c.stage == "pack":
            n = c.operands["x"].type.shape[-1].eval(syms)
            if n % 2:
                raise InputError(f"pack needs an even last dim, got {n}", c.loc)
        if c.stage == "norm":
            eps = c.operands["eps"]
            val = inputs.get(eps.name)
            if isinstance(val, (int, float)) and val < 0:
                raise InputError(f"{eps.name}: eps must be >= 0, got {val}")
    return syms


class Executor:
    """Launches the kernels of one compiled pipeline (Triton), or interprets its program."""

    def __init__(self, cp: CompiledPipeline):
        self.cp = cp
        self.aliases = _aliases(cp)
        self._kernels = {}

    def kernel(self, step):
        from ..backends.triton.launch import TritonKernel
        k = self._kernels.get(step.name)
        if k is None:
            k = self._kernels[step.name] = TritonKernel(step.source)
        return k

    def run(self, inputs: dict, config=None, interpret: Optional[bool] = None) -> dict:
        cp = self.cp
        if cp.backend == "reference":
            from ..backends.reference.interpreter import run_pipeline
            return self._write_back(run_pipeline(cp.program, inputs), inputs)
        env = dict(inputs)
        for step in cp.steps:
            kern = self.kernel(step)
            ins = {n: env[n] for n in step.inputs}
            dims = kern.bind_dims(ins)
            outs = kern.allocate_outputs(ins, dims)
            for tensor_name, value_name in kern.source.outputs:
                alias = self.aliases.get(value_name)
                if alias is not None:
                    outs[tensor_name] = inputs[alias]        # update the cache in place
            kern.launch(ins, outs, dims, config, interpret)
            for tensor_name, value_name in kern.source.outputs:
                env[value_name] = outs[tensor_name]
        return {ret: env[val] for ret, val in cp.returns}

    def _write_back(self, outs: dict, inputs: dict) -> dict:
        """Reference results for caches are fresh copies: copy them into the caller's cache."""
        by_value = {val: ret for ret, val in self.cp.returns}
        for value_name, param in self.aliases.items():
            ret = by_value.get(value_name)
            if ret is not None and ret in outs:
                inputs[param].copy_(outs[ret])
                outs[ret] = inputs[param]
        return outs
