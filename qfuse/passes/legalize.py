"""``qf-legalize``: granularity -> concrete block shapes, and the static shape checks.

For every ``qf.scale`` / ``qf.round`` it records the block a scale covers as a
``qf.block = [rows, cols]`` attribute (-1 = the whole extent):

| granularity | block |
|---|---|
| per_tensor | [-1, -1] |
| per_token | [1, -1] |
| per_1x32 / per_1x64 / per_1x128 | [1, 32] / [1, 64] / [1, 128] |
| mx | [1, 32] (E8M0 scale) |
| per_128x128 | [128, 128] |

Static checks (when the dim is a constant; symbolic dims are checked when the pipeline is
called): mx needs N % 32 == 0 (as AITER's MXFP4 kernels and GEMMs do); pack needs an even
N; the key and value_asm cache layouts need their last dim equal to the vector width x.
Errors are located at the DSL position of the stage.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import QfuseError

__all__ = ["LegalizePass", "BLOCKS", "BLOCK_ATTR"]

BLOCK_ATTR = "qf.block"
BLOCKS = {"per_tensor": (-1, -1), "per_token": (1, -1), "per_1x32": (1, 32),
          "per_1x64": (1, 64), "per_1x128": (1, 128), "mx": (1, 32), "per_128x128": (128, 128)}


def _static_last(value):
    from ..dialect.mlir import ir
    t = ir.RankedTensorType(value.type)
    n = t.shape[-1]
    return None if ir.ShapedType.is_dynamic_size(n) else n


def _static(value, i):
    from ..dialect.mlir import ir
    n = ir.RankedTensorType(value.type).shape[i]
    return None if ir.ShapedType.is_dynamic_size(n) else n


def _legalize_op(op) -> None:
    from ..dialect.encoding import source_loc
    from ..dialect.mlir import ir
    from ..dialect.reader import op_operands, op_options
    name = op.operation.name
    if name not in ("qf.scale", "qf.round", "qf.pack", "qf.cache_write"):
        return
    opts, operands = op_options(op), op_operands(op)
    loc = source_loc(op.location)
    if name in ("qf.scale", "qf.round"):
        gran = opts["granularity"]
        i64 = ir.IntegerType.get_signless(64)
        op.operation.attributes[BLOCK_ATTR] = ir.ArrayAttr.get(
            [ir.IntegerAttr.get(i64, v) for v in BLOCKS[gran]])
        n = _static_last(operands["x"])
        if gran == "mx" and n is not None and n % 32:
            raise QfuseError(f"mx quantisation works on whole 1x32 blocks: N = {n} is not a "
                             f"multiple of 32 (pad the rows, or use per_1x32 with fp32 scales)",
                             loc)
    elif name == "qf.pack":
        n = _static_last(operands["x"])
        if n is not None and n % 2:
            raise QfuseError(f"pack puts two 4-bit codes in a byte: N = {n} must be even", loc)
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
