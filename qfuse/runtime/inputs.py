"""Random, valid inputs for a pipeline (used by ``qfuse run``, the demo and tests).

Floats are ``randn``; integer parameters get values that make sense for the stage that
reads them (its index operands, ``qfuse.dialect.requirements.index_operands``): slot
mappings are distinct slots inside the cache (a few ``-1`` to exercise skipping), expert
ids fall in ``[0, E)``, RoPE positions in ``[0, P)``, gather indices in ``[-1, M]`` (so
padding rows appear); scales a stage is given (``OperandSpec.positive``) are positive.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..dialect.requirements import index_operands
from ..dialect.stages import STAGES
from ..dialect.types import ScalarType, TensorType
from ..dialect.typed import TypedPipeline
from ..errors import InputError

__all__ = ["bind_shape", "random_inputs", "parse_shape_arg"]


def parse_shape_arg(text: str) -> dict:
    """``"M=4,N=256"`` -> ``{"M": 4, "N": 256}``."""
    dims = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not value.strip().lstrip("-").isdigit():
            raise InputError(f"bad --shape entry {part!r}: write NAME=INT, e.g. M=4,N=256")
        dims[name.strip()] = int(value)
    return dims


def bind_shape(t: TensorType, dims: dict, param: str) -> tuple:
    shape = []
    for d in t.shape:
        missing = sorted(d.symbols() - set(dims))
        if missing:
            raise InputError(f"{param}: give a size for {', '.join(missing)} "
                             f"(e.g. --shape {missing[0]}=4)")
        shape.append(d.eval(dims))
    return tuple(shape)


def _users(tp: TypedPipeline, value) -> list:
    return [(c, name) for c in tp.calls for name, v in c.operands.items() if v is value]


def _int_values(tp, p, shape, dims, g) -> Optional[torch.Tensor]:
    """Values of an integer parameter that a stage reads as indices (see the module)."""
    for call, operand in _users(tp, p.value):
        for ix in index_operands(call):
            if ix.operand != operand:
                continue
            bind_shape(call.operands[ix.bound_of].type, dims, ix.bound_of)  # names a missing size
            bound = ix.bound.eval(dims)
            below, above = ix.samples
            if not ix.unique:
                return torch.randint(-below, bound + above, shape, generator=g)
            n = shape[0]
            if n > bound:
                raise InputError(f"{p.value.name}: {n} tokens do not fit in {bound} distinct "
                                 f"slots of {ix.bound_of}")
            vals = torch.randperm(bound, generator=g)[:n]
            if below and n > 2:
                vals[torch.randperm(n, generator=g)[: max(1, n // 8)]] = -1
            return vals
    return None


def random_inputs(tp: TypedPipeline, dims: dict, seed: int = 0, device: str = "cpu") -> dict:
    """One tensor (or scalar) per parameter of ``tp``, deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for p in tp.params:
        name, t = p.value.name, p.value.type
        if isinstance(t, ScalarType):
            out[name] = p.default if p.default is not None else (1e-6 if t.dtype.is_float else 1)
            continue
        shape = bind_shape(t, dims, name)
        dt = t.dtype
        if dt.kind == "int":
            vals = _int_values(tp, p, shape, dims, g)
            if vals is None:
                vals = torch.randint(0, 4, shape, generator=g)
            out[name] = vals.to(dt.torch_dtype())
        elif dt.is_float:
            v = torch.randn(shape, generator=g)
            feeds_scale = any(STAGES[c.stage].operand(o).positive for c, o in _users(tp, p.value))
            if shape == (1,) or feeds_scale:           # a static scale or stored cache scales
                v = v.abs() * 0.05 + 0.01
            out[name] = v.to(dt.torch_dtype())
        else:  # a quantised cache: start from codes of small random values
            v = torch.randn(shape, generator=g) * 4
            tdt = dt.torch_dtype()
            out[name] = v.to(tdt) if tdt.is_floating_point else v.round().clamp(-127, 127).to(tdt)
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
