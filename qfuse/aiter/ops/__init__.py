"""``aiter.ops``: ``quant``, ``cache``, ``norm``, ``communication``, ``triton``, ``enum``,
``fused_qk_norm_rope_cache_quant``, ``fused_qk_norm_mrope_cache_quant`` (submodules load on
first use)."""
import importlib

_SUBMODULES = ("quant", "cache", "norm", "rmsnorm", "communication", "triton", "enum",
               "fused_qk_norm_rope_cache_quant", "fused_qk_norm_mrope_cache_quant")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
