"""``aiter.ops.triton``: AITER's Triton operations (``quant``: the quantisers and the
fused FP8 / MXFP4 operations)."""
from . import quant

__all__ = ["quant"]
