"""Each pipeline as a torch custom op (``torch.ops.qfuse.<name>_<hash>``) with a fake kernel.

The op makes a pipeline opaque to ``torch.compile`` (Dynamo records one node; the fake
implementation gives output shapes and dtypes from the program's types) and safe in CUDA
graph capture (the real implementation only launches kernels and allocates through the
caching allocator). Cache parameters that a ``cache_write`` updates are declared mutated
(``Tensor(a!)``) and are not returned by the op; the Python wrapper hands them back.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import torch

from ..dialect.in_place import updated_params
from ..dialect.types import ScalarType
from ..dialect.typed import TypedPipeline
from .program_json import pipeline_to_json

__all__ = ["register_pipeline_op", "aliased_params"]

_LIB = torch.library.Library("qfuse", "FRAGMENT")
_REGISTERED: dict = {}


def aliased_params(tp: TypedPipeline) -> tuple:
    """``({value name: parameter name}, mutated parameter names)``: outputs that are
    parameters updated in place (cache_write targets) or parameters returned as they are."""
    params = {p.value: p.value.name for p in tp.params}
    out = updated_params(tp)
    mutated = set(out.values())
    for v in tp.returns:
        if v in params:
            out[v.name] = params[v]
    return out, mutated


def _schema_arg(p, mutated: set, alias_ids: dict) -> str:
    t, name = p.value.type, p.value.name
    if isinstance(t, ScalarType):
        kind = "float" if t.dtype.is_float else "int"
        return f"{kind} {name}"     # defaults are bound by the wrapper: every call passes all
    if name in mutated:
        return f"Tensor(a{alias_ids.setdefault(name, len(alias_ids))}!) {name}"
    return f"Tensor {name}"


def register_pipeline_op(tp: TypedPipeline, impl: Callable, variant: str = "") -> Callable:
    """Define ``qfuse::<name>_<hash>``; ``impl(inputs: dict) -> dict`` runs it eagerly.

    Returns the op (``torch.ops.qfuse.<opname>``). The hash covers the program and
    ``variant`` (the backend choice), so one program with one backend registers once
    (a later callable of it replaces the implementation: they compute the same thing).
    """
    digest = hashlib.sha256(json.dumps([pipeline_to_json(tp), variant], sort_keys=True,
                                       default=str).encode()).hexdigest()[:10]
    opname = f"{tp.name}_{digest}"
    if opname in _REGISTERED:
        _REGISTERED[opname][1][0] = impl        # newest implementation wins
        return _REGISTERED[opname][0]
    aliases, mutated = aliased_params(tp)
    names = [p.value.name for p in tp.params]
    ret_values = [v for v in tp.returns if v.name not in aliases]
    alias_ids: dict = {}
    args = ", ".join(_schema_arg(p, mutated, alias_ids) for p in tp.params)
    rets = ", ".join("Tensor" for _ in ret_values)
    _LIB.define(f"{opname}({args}) -> ({rets})")
    impl_box = [impl]
    ret_names = [n for n, v in zip(tp.return_names or [v.name for v in tp.returns], tp.returns)
                 if v.name not in aliases]

    def real(*args):
        outs = impl_box[0](dict(zip(names, args)))
        res = tuple(outs[n] for n in ret_names)
        return None if not res else res[0] if len(res) == 1 else res

    def fake(*args):
        inputs = dict(zip(names, args))
        syms = {}
        device = None
        for p in tp.params:
            t = inputs[p.value.name]
            if isinstance(t, torch.Tensor):
                device = device or t.device
                for d, size in zip(p.value.type.shape, t.shape):
                    if d.is_symbol:
                        syms.setdefault(d.value, size)
        outs = tuple(torch.empty(tuple(d.eval(syms) for d in v.type.shape),
                                 dtype=v.type.dtype.torch_dtype(), device=device)
                     for v in ret_values)
        return None if not outs else outs[0] if len(outs) == 1 else outs

    _LIB.impl(opname, real, "CompositeExplicitAutograd")
    torch.library.register_fake(f"qfuse::{opname}", fake, lib=_LIB)
    op = getattr(torch.ops.qfuse, opname)
    _REGISTERED[opname] = (op, impl_box)
    return op
