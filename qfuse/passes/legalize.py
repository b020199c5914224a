"""``qf-legalize``: the static shape rules a backend relies on, checked on the fused IR.

A stage is legal for code generation when (for a constant dim; symbolic dims are checked
when the pipeline is called): mx quantisation has N % 32 == 0 (as AITER's MXFP4 kernels
and GEMMs do); the key and value_asm cache layouts end in the vector width x (and key's
head size is a multiple of it). (An odd N for pack is already refused by its verifier.)
Errors are located at the DSL position of the stage. The pass changes nothing.

(The block a scale covers is the catalog's ``GROUP_SIZES[granularity]``; backends read
the granularity, so the pass writes no block attribute that could disagree with it.)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import QfuseError

__all__ = ["LegalizePass"]


def _static_last(value):
    from ..dialect.mlir import ir
    t = ir.RankedTensorType(value.type)
    n = t.shape[-1]
    return None if ir.ShapedType.is_dynamic_size(n) else n


def _legalize_op(op) -> None:
    from ..dialect.encoding import source_loc
    from ..dialect.reader import op_operands, op_options
    name = op.operation.name
    if name not in ("qf.scale", "qf.round", "qf.cache_write"):
        return
    opts, operands = op_options(op), op_operands(op)
    loc = source_loc(op.location)
    if name in ("qf.scale", "qf.round"):
        gran = opts["granularity"]
        n = _static_last(operands["x"])
        if gran == "mx" and n is not None and n % 32:
            raise QfuseError(f"mx quantisation works on whole 1x32 blocks: N = {n} is not a "
                             f"multiple of 32 (pad the rows, or use per_1x32 with fp32 scales)",
                             loc)
    else:
        layout, vec = opts["layout"], opts["vec"]
        cache = operands["cache"]
        if layout in ("key", "value_asm"):
            last = _static_last(cache)
            if last is not None and last != vec:
                raise QfuseError(f"the {layout} cache layout ends in the vector width x = {vec} "
                                 f"(16 bytes of the cache dtype), but the cache's last dim is "
                                 f"{last}: pass vec={last} or fix the cache shape", loc)
        d = _static_last(operands["x"])
        if layout == "key" and d is not None and d % vec:
            raise QfuseError(f"head size {d} is not a multiple of the key vector width x = {vec}",
                             loc)


@dataclass(frozen=True)
class LegalizePass:
    name: str = "qf-legalize"

    def run(self, module):
        from ..dialect.mlir import ir
        ops = []

        def collect(op):
            ops.append(op.opview)
            return ir.WalkResult.ADVANCE

        with module.context:
            module.operation.walk(collect)
            for op in ops:          # outside the walk: errors must reach the caller as is
                _legalize_op(op)
        return module
