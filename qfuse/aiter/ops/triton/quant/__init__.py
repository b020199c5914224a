"""``aiter.ops.triton.quant``: the Triton quantisers (``quant``), fused FP8
(``fused_fp8_quant``) and fused MXFP4 (``fused_mxfp4_quant``) operations (submodules load
on first use)."""
import importlib

from . import quant
from .quant import (dynamic_mxfp4_quant, dynamic_per_tensor_quant_fp8_i8,
                    dynamic_per_token_quant_fp8_i8, static_per_tensor_quant_fp8_i8)

__all__ = ["quant", "fused_fp8_quant", "fused_mxfp4_quant", "dynamic_mxfp4_quant",
           "dynamic_per_tensor_quant_fp8_i8", "dynamic_per_token_quant_fp8_i8",
           "static_per_tensor_quant_fp8_i8"]


def __getattr__(name: str):
    if name in ("fused_fp8_quant", "fused_mxfp4_quant"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
