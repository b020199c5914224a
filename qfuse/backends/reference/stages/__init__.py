"""One torch function per catalog stage (``qfuse.dialect.stages.STAGES``).

Each ``run_<stage>(*operands, **options)`` takes its operands by catalog name (``None``
for an absent optional operand; scalar operands as Python numbers or 0-d tensors) and
every option by catalog name, and returns the tuple of its present results in catalog
order. One rename: ``cache_write``'s option ``vec`` (the key-layout vector width) is
the Python keyword ``vec_width``; :func:`call_stage` does that renaming.
"""
from __future__ import annotations

from typing import Callable

from .cache import run_cache_write
from .collective import run_all_reduce
from .glue import (run_act_mul, run_add, run_cast, run_flatten, run_gather, run_gelu,
                   run_mul, run_reduce, run_rope, run_silu, run_smooth)
from .layout import run_pack, run_shuffle, run_unpack
from .norm import run_norm
from .quant import run_dequant, run_round, run_scale

__all__ = ["HANDLERS", "OPTION_KEYWORDS", "call_stage"] + [
    "run_add", "run_mul", "run_silu", "run_gelu", "run_act_mul", "run_cast", "run_norm",
    "run_smooth", "run_scale", "run_round", "run_pack", "run_shuffle", "run_reduce",
    "run_flatten", "run_rope", "run_gather", "run_cache_write", "run_dequant", "run_unpack", "run_all_reduce"]

HANDLERS: dict[str, Callable] = {
    "add": run_add, "mul": run_mul, "silu": run_silu, "gelu": run_gelu,
    "act_mul": run_act_mul, "cast": run_cast, "norm": run_norm, "smooth": run_smooth,
    "scale": run_scale, "round": run_round, "pack": run_pack, "shuffle": run_shuffle,
    "reduce": run_reduce, "flatten": run_flatten, "rope": run_rope, "gather": run_gather,
    "cache_write": run_cache_write, "dequant": run_dequant, "unpack": run_unpack, "all_reduce": run_all_reduce,
}

# (stage, catalog option name) -> Python keyword, where the two differ
OPTION_KEYWORDS: dict[tuple, str] = {("cache_write", "vec"): "vec_width"}


def call_stage(stage: str, operands: dict, options: dict) -> tuple:
    """Run one stage: ``operands`` and ``options`` keyed by catalog names. Returns a tuple."""
    try:
        fn = HANDLERS[stage]
    except KeyError:
        raise NotImplementedError(f"the reference backend has no stage {stage!r}") from None
    kwargs = dict(operands)
    for name, value in options.items():
        kwargs[OPTION_KEYWORDS.get((stage, name), name)] = value
    out = fn(**kwargs)
    return out if isinstance(out, tuple) else (out,)
