"""``aiter.ops.triton.quant``: the Triton quantisers (``quant``), fused FP8
(``fused_fp8_quant``) and fused MXFP4 (``fused_mxfp4_quant``) operations."""
from . import quant
from .quant import (dynamic_mxfp4_quant, dynamic_per_tensor_quant_fp8_i8,
                    dynamic_per_token_quant_fp8_i8, static_per_tensor_quant_fp8_i8)

__all__ = ["quant", "dynamic_mxfp4_quant", "dynamic_per_tensor_quant_fp8_i8",
           "dynamic_per_token_quant_fp8_i8", "static_per_tensor_quant_fp8_i8"]
