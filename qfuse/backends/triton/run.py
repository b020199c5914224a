"""Running pipelines through the Triton backend (tests, the reference comparison, eager use).

* :func:`sub_pipeline` cuts a kernel (a TypedPipeline) out of a pipeline from a list of
  calls, its inputs and outputs, the way a fusion plan describes one;
* :func:`run_kernels` renders, allocates and launches a list of kernels in order, passing
  values between them by name;
* :func:`run_pipeline` runs one pipeline and returns ``{return name: tensor}`` like the
  reference interpreter (``qfuse.backends.reference.run_pipeline``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from ...dialect.types import ScalarType
from ...dialect.typed import ParamInfo, TypedPipeline
from .kernel import TritonConfig
from .codegen import infer_space, render_kernel
from .launch import TritonKernel

__all__ = ["sub_pipeline", "run_kernels", "run_pipeline", "compiled"]


def sub_pipeline(tp: TypedPipeline, calls: Sequence, inputs: Sequence, outputs: Sequence,
                 name: Optional[str] = None) -> TypedPipeline:
    """The kernel made of ``calls`` (program order) reading ``inputs`` (Values from outside:
    pipeline parameters or earlier kernels' outputs) and writing ``outputs``."""
    defaults = {p.value: p.default for p in tp.params}
    used = {id(v) for c in calls for v in c.operands.values() if v is not None}
    consts = [c for c in tp.consts if id(c.value) in used]
    cvals = {id(c.value) for c in consts}
    params = [ParamInfo(v, defaults.get(v)) for v in inputs if id(v) not in cvals]
    return TypedPipeline(name or tp.name, params, consts, list(calls), list(outputs), tp.loc,
                         [v.name for v in outputs])


_CACHE: dict = {}


def compiled(tp: TypedPipeline, space: Optional[str] = None) -> TritonKernel:
    """``TritonKernel(render_kernel(tp, space))``, cached per pipeline object."""
    space = space or infer_space(tp)
    key = (id(tp), space)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not tp:
        hit = _CACHE[key] = (tp, TritonKernel(render_kernel(tp, space)))
    return hit[1]


def run_kernels(kernels: Sequence[Union[TypedPipeline, tuple]], values: dict,
                config: Optional[TritonConfig] = None, interpret: Optional[bool] = None) -> dict:
    """Run kernels in order. ``values`` maps value names to tensors/scalars (the pipeline
    inputs); each kernel's outputs are added under their value names. Returns the dict."""
    env = dict(values)
    for k in kernels:
        tp, space = (k, None) if isinstance(k, TypedPipeline) else k
        space = space or infer_space(tp)
        kern = compiled(tp, space)
        ins = {p.value.name: env[p.value.name] for p in tp.params if p.value.name in env}
        dims = kern.bind_dims(ins)
        outs = kern.allocate_outputs(ins, dims)
        kern.launch(ins, outs, dims, config, interpret)
        for tensor_name, value_name in kern.source.outputs:
            env[value_name] = outs[tensor_name]
    return env


def run_pipeline(tp: TypedPipeline, inputs: dict, kernels: Optional[Sequence] = None,
                 config: Optional[TritonConfig] = None,
                 interpret: Optional[bool] = None) -> dict:
    """Run ``tp`` (as one kernel, or as the given ``kernels``) and return its results by
    return name. Scalar parameters with defaults may be omitted."""
    values = dict(inputs)
    for p in tp.params:
        if isinstance(p.value.type, ScalarType) and p.value.name not in values \
                and p.default is not None:
            values[p.value.name] = p.default
    env = run_kernels(kernels or [tp], values, config, interpret)
    names = list(tp.return_names) or [v.name for v in tp.returns]
    return {n: env[v.name] for n, v in zip(names, tp.returns)}
