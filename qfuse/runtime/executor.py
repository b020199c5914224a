"""Run a :class:`CompiledPipeline` on tensors: the checks every backend shares, then the
backend's runner.

Inputs are checked against the program's signature (dtype, rank, symbolic dims the same
everywhere, one device, last dim contiguous where the backend needs it, scalar ranges,
the stages' shape requirements, optionally data indices), each with a message naming the
parameter, once per call signature; a later call of the same signature only re-checks
what the signature does not fix (scalars, index values). The backend's runner
(``Backend.runner``) runs the kernels; a KV cache (or its scale table) passed in is
updated in place and also returned. Needs only torch and the backend's runtime.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..backends.reference.interpreter import bind_inputs
from ..dialect.in_place import updated_params
from ..dialect.stages import STAGES
from ..dialect.types import ScalarType
from ..errors import InputError
from .artifact import CompiledPipeline
from .index_check import IndexChecks, check_requirements, index_policy
from .tuning import shape_bucket

__all__ = ["Executor", "validate_inputs", "storage_views"]


def storage_views(program) -> list:
    """``(name, dtype)`` of the parameters whose inputs may come in another torch dtype
    holding the same bytes (``DType.also``: an e8m0 scale as ``torch.float8_e8m0fnu``)."""
    return [(p.value.name, p.value.type.dtype) for p in program.params
            if not isinstance(p.value.type, ScalarType) and p.value.type.dtype.also]


def _as_storage(views: list, inputs: dict) -> dict:
    """``inputs`` with each tensor of ``views`` (:func:`storage_views`) viewed as its
    storage dtype, so backends, signatures and binding see one dtype per parameter."""
    out = None
    for name, dt in views:
        v = inputs.get(name)
        if isinstance(v, torch.Tensor) and v.dtype != dt.torch_dtype() and dt.accepts(v.dtype):
            out = out if out is not None else dict(inputs)
            out[name] = dt.storage(v)
    return inputs if out is None else out


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
    if len(devices) > 1:
        (d0, n0), (d1, n1) = list(devices.items())[:2]
        raise InputError(f"inputs are on different devices: {n0} on {d0}, {n1} on {d1}")
    _, syms = bind_inputs(cp.program, inputs)
    check_requirements(cp.program, syms)
    _check_scalars(_scalar_rules(cp), inputs)
    return syms


def _scalar_rules(cp: CompiledPipeline) -> list:
    """``(name, bound)`` of every float scalar parameter: the arguments a call can get wrong
    once its tensor signature has been checked (the signature fixes only their type).
    ``bound``: ``(operand, minimum)`` when a stage reads it as an operand with a smallest
    value (the catalog's ``OperandSpec.min``: a norm's eps >= 0), else None."""
    bounds = {}
    for c in cp.program.calls:
        for spec in STAGES[c.stage].operands:
            v = c.operands.get(spec.name)
            if spec.min is not None and v is not None:
                bounds.setdefault(v.name, (spec.name, spec.min))
    return [(p.value.name, bounds.get(p.value.name)) for p in cp.program.params
            if isinstance(p.value.type, ScalarType) and p.value.type.dtype.is_float]


def _check_scalars(rules: list, inputs: dict) -> None:
    """Every float scalar finite and at least its operand's minimum (``rules`` from
    _scalar_rules)."""
    for name, bound in rules:
        val = inputs.get(name)
        if not isinstance(val, (int, float)):
            continue
        if not math.isfinite(val):
            raise InputError(f"{name}: must be finite, got {val}")
        if bound is not None and val < bound[1]:
            raise InputError(f"{name}: {bound[0]} must be finite and >= {bound[1]:g}, got {val}")


def _signature(inputs: dict) -> tuple:
    """What a bound launch depends on: every tensor's shape, strides, dtype, device and
    16-byte alignment, and the properties Triton specialises integers on (== 1, % 16)."""
    sig = []
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            sig.append((k, v.shape, v.stride(), v.dtype, v.device, v.data_ptr() % 16 == 0))
        elif isinstance(v, int):
            sig.append((k, int, v == 1, v % 16 == 0))
        else:
            sig.append((k, type(v)))
    return tuple(sig)


class Executor:
    """Runs one compiled pipeline through its backend's runner (``Backend.runner``): the
    checks every backend shares happen here, the kernels there."""

    def __init__(self, cp: CompiledPipeline, index_check: Optional[str] = None):
        from ..backends.registry import get_backend
        self.cp = cp
        self.aliases = updated_params(cp.program)
        self.runner = get_backend(cp.backend).runner(cp, self.aliases)
        self.tuning = None             # TuningTable (qfuse.runtime.tuning) or None
        self.device_name = ""
        self._scalars = _scalar_rules(cp)
        strict = index_policy(index_check) == "raise"
        self._index_checks = IndexChecks(cp.program) if strict else None
        self._syms: dict = {}          # call signature -> bound dims (for index checks)
        self._views = storage_views(cp.program)

    def set_tuning(self, table, device_name: str) -> None:
        """Launch with ``table``'s configs for ``device_name`` from now on."""
        self.tuning, self.device_name = table, device_name

        def lookup(kernel: str, rows: int):
            return table.config_for(kernel, shape_bucket(device_name, rows))
        self.runner.set_configs(lookup)

    def run(self, inputs: dict, config=None, interpret: Optional[bool] = None) -> dict:
        """Validate a call (once per signature) and run it; ``config`` / ``interpret``
        force a launch config or the interpreter (then nothing is kept for later calls)."""
        if self._views:
            inputs = _as_storage(self._views, inputs)
        seen = self.run_seen(inputs) if config is None and interpret is None else None
        if seen is not None:
            return seen
        key = _signature(inputs)
        syms = validate_inputs(self.cp, inputs, need_contiguous=self.runner.needs_contiguous)
        if self._index_checks:
            self._index_checks.run(inputs, syms)
        self._syms[key] = syms
        return self.runner.run(inputs, key, config, interpret, syms)

    def run_seen(self, inputs: dict):
        """``run(inputs)`` when this exact signature was bound before, else None (the
        caller then takes the checked path)."""
        if self._views:
            inputs = _as_storage(self._views, inputs)
        key = _signature(inputs)
        if not self.runner.has(key):
            return None
        _check_scalars(self._scalars, inputs)
        if self._index_checks:
            self._index_checks.run(inputs, self._syms[key])
        return self.runner.run_seen(key, inputs)
