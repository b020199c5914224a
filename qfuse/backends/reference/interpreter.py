"""Run a :class:`~qfuse.dialect.typed.TypedPipeline` eagerly with the reference stages.

``run_pipeline(tp, inputs)`` binds the parameters (checking dtypes, ranks and symbolic
dims, e.g. that ``N`` is the same in ``x: bf16[M, N]`` and ``w: bf16[N]``), evaluates the
stage calls in program order with an environment keyed by :class:`Value` identity, and
returns the pipeline's results by return name. TypedPipelines from the DSL checker and
from the MLIR reader (``qfuse.dialect.reader.read_pipelines``) run the same way.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from ...dialect.types import ScalarType, TensorType
from ...errors import InputError
from .stages import call_stage

__all__ = ["run_pipeline", "bind_inputs", "run_host_step"]

Input = Union[torch.Tensor, float, int, bool]


def _torch_name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def _describe(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"{_torch_name(v.dtype)} tensor of shape {tuple(v.shape)}"
    return f"{type(v).__name__} {v!r}"


def _scalar_input(name: str, t: ScalarType, v) -> Union[float, int]:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise InputError(f"{name}: expected a {t} scalar, got {_describe(v)}")
        v = v.reshape(()).item()
    if not isinstance(v, (int, float)):
        raise InputError(f"{name}: expected a {t} scalar, got {_describe(v)}")
    if t.dtype.kind == "int":
        if float(v) != int(v):
            raise InputError(f"{name}: expected an integer {t} scalar, got {v!r}")
        return int(v)
    return float(v)


def bind_inputs(tp, inputs: dict, device=None) -> tuple:
    """Check ``inputs`` against ``tp.params``; return ``(values by param, symbol bindings)``.

    Raises :class:`InputError` naming the parameter: a missing or unknown input, a wrong
    dtype or rank (``x: expected bf16[M, N], got float32 tensor of shape (4,)``), a constant
    dim that differs, or a symbol bound to two sizes (``N=64 here but N=128 from x``).
    """
    names = [p.value.name for p in tp.params]
    for k in inputs:
        if k not in names:
            raise InputError(f"{k}: {tp.name} has no parameter {k!r} (parameters: "
                             f"{', '.join(names) or 'none'})")
    values: dict = {}
    syms: dict = {}
    origin: dict = {}
    compound = []
    for p in tp.params:
        name, t = p.value.name, p.value.type
        if name not in inputs:
            if p.default is None:
                raise InputError(f"{name}: missing input (expected {t})")
            values[p.value] = p.default
            continue
        v = inputs[name]
        if isinstance(t, ScalarType):
            values[p.value] = _scalar_input(name, t, v)
            continue
        if (not isinstance(v, torch.Tensor) or not t.dtype.accepts(v.dtype)
                or v.dim() != t.rank):
            raise InputError(f"{name}: expected {t} ({t.dtype.torch_names()}), got "
                             f"{_describe(v)}")
        v = t.dtype.storage(v)
        for i, (dim, size) in enumerate(zip(t.shape, v.shape)):
            if dim.is_const:
                if dim.value != size:
                    raise InputError(f"{name}: expected {t}, got {_describe(v)}: dim {i} must be "
                                     f"{dim.value}")
            elif dim.is_symbol:
                s = dim.value
                if s in syms and syms[s] != size:
                    raise InputError(f"{name}: expected {t}, got {_describe(v)}: {s}={size} here "
                                     f"but {s}={syms[s]} from {origin[s]}")
                syms.setdefault(s, size)
                origin.setdefault(s, name)
            else:
                compound.append((name, t, v, i, dim, size))
        values[p.value] = v if device is None else v.to(device)
    for name, t, v, i, dim, size in compound:
        if dim.symbols() <= set(syms):
            got = dim.eval(syms)
            if got != size:
                bound = ", ".join(f"{s}={syms[s]}" for s in sorted(dim.symbols()))
                raise InputError(f"{name}: expected {t}, got {_describe(v)}: dim {i} must be "
                                 f"{dim} = {got} ({bound})")
    return values, syms


def _check_result(call, value, result, syms: dict) -> None:
    t = value.type
    if not isinstance(t, TensorType):
        return
    want = t.dtype.torch_dtype()
    ok = isinstance(result, torch.Tensor) and result.dtype == want and result.dim() == t.rank
    if ok:
        for dim, size in zip(t.shape, result.shape):
            if dim.symbols() <= set(syms) and dim.eval(syms) != size:
                ok = False
    if not ok:
        raise RuntimeError(f"reference backend: {call.stage} at {call.loc} produced "
                           f"{_describe(result)} for %{value.name}, declared {t}")


def run_pipeline(tp, inputs: dict, *, device: Optional[Union[str, torch.device]] = None) -> dict:
    """Execute ``tp`` on ``inputs`` (by parameter name) and return ``{return name: value}``
    in return order. Scalar parameters with a default may be omitted. With ``device``,
    tensor inputs are moved there first."""
    env, syms = bind_inputs(tp, inputs, device)
    for c in tp.consts:
        env[c.value] = c.literal
    for call in tp.calls:
        ops = {k: (env[v] if v is not None else None) for k, v in call.operands.items()}
        try:
            res = call_stage(call.stage, ops, call.options)
        except InputError as e:
            raise InputError(f"{call.stage}: {e.message}", call.loc) from e
        except ValueError as e:
            raise InputError(f"{call.stage}: {e}", call.loc) from e
        if len(res) != len(call.results):
            raise RuntimeError(f"reference backend: {call.stage} at {call.loc} returned "
                               f"{len(res)} results, the call declares {len(call.results)}")
        for v, r in zip(call.results, res):
            _check_result(call, v, r, syms)
            env[v] = r
    names = list(tp.return_names) or [v.name for v in tp.returns]
    return {n: env[v] for n, v in zip(names, tp.returns)}


def run_host_step(step, env: dict) -> dict:
    """``{output name: tensor}`` of a compiled pipeline's host step (a collective between
    kernels, compiled to no kernel): its program interpreted here, with the stages' host
    implementation, on the tensors where they are. Every backend's runner calls this for
    such a step; the kernels after it read its result."""
    params = [p.value.name for p in step.program.params]
    outs = run_pipeline(step.program, {p: env[n] for p, n in zip(params, step.inputs)})
    return dict(zip(step.outputs, outs.values()))
