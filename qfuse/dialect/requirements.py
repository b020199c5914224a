"""Bind-time facts of each stage: shape relations its lowerings rely on, and its data indices.

The type rules (``stage_rules``) prove what they can from the declared types; a relation
between *different* symbols (``DX * X == D`` for a key-layout cache written as
``[B, H, DX, BS, X]``, ``2 * R <= D`` for a RoPE table ``[P, R]``) can only be checked
once the tensors are bound. Every backend addresses memory assuming these relations, so
the runtime checks all of them for every call signature before anything launches
(:func:`check_requirements`), with a message that names the tensor, the two sides and
their values. A relation that holds by construction costs nothing (both sides evaluate
to the same number).

Data indices (:func:`index_operands`) are the other half of memory safety: values read
from tensors that address other tensors (KV slots, RoPE positions, expert ids, gather
rows). Every backend bounds-checks them in the kernel with the defined result given
here (``docs/semantics.md``, "Indices from data"); :mod:`qfuse.runtime.index_check`
can additionally validate them on the host and raise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .options import CacheLayout, CacheQuant, MRope, ScaleLayout
from .types import Dim, TensorType, mul_dim

__all__ = ["Requirement", "IndexOperand", "call_requirements", "index_operands",
           "MAX_CACHE_TOKENS"]

# Tokens per cache write the Triton backend can tag (its slot claims pack the token index
# into 24 bits beside a call generation).
MAX_CACHE_TOKENS = 1 << 24


@dataclass(frozen=True)
class Requirement:
    """``lhs rel rhs`` over dims of the call's operands, checked once the dims are bound.

    ``rel``: ``==``, ``>=``, ``<=``, ``<`` or ``%`` (``lhs % rhs == 0``). ``operand`` is the
    operand whose tensor is at fault when the relation fails; ``what`` says why the stage
    needs it (it becomes the error message)."""
    lhs: Dim
    rel: str
    rhs: Dim
    operand: str
    what: str

    def holds(self, a: int, b: int) -> bool:
        if self.rel == "==":
            return a == b
        if self.rel == ">=":
            return a >= b
        if self.rel == "<=":
            return a <= b
        if self.rel == "<":
            return a < b
        if self.rel == "%":
            return b != 0 and a % b == 0
        raise ValueError(f"unknown relation {self.rel!r}")

    def text(self) -> str:
        return f"{self.lhs} % {self.rhs} == 0" if self.rel == "%" else \
            f"{self.lhs} {self.rel} {self.rhs}"


@dataclass(frozen=True)
class IndexOperand:
    """An operand whose values address another tensor: valid values are ``[0, bound)``,
    ``bound`` a dim of operand ``bound_of``.

    ``outside`` is the defined result for a value outside that range, the same on every
    backend; ``error`` says whether the strict host check reports it (values the stage
    defines as padding, like a negative slot or a gather index of -1, are not errors).
    Random inputs (``qfuse run``, the demo, tests) draw from
    ``[-samples[0], bound + samples[1])``, distinct values when ``unique`` (KV slots:
    a repeated slot is defined, but not what a caller means)."""
    operand: str
    bound: Dim
    outside: str
    error_below: bool
    error_above: bool
    bound_of: str
    unique: bool = False
    samples: tuple = (0, 0)


def _t(call, name: str) -> Optional[TensorType]:
    v = call.operands.get(name)
    return v.type if v is not None and isinstance(v.type, TensorType) else None


def _even(call) -> list:
    x = _t(call, "x")
    return [Requirement(x.shape[-1], "%", Dim(2), "x", f"{call.stage} needs an even last dim")]


def _pack(call) -> list:
    """An even last dim; a multiple of the order's word when it permutes within words."""
    word = call.options["order"].word
    if word == 1:
        return _even(call)
    return [Requirement(_t(call, "x").shape[-1], "%", Dim(word), "x",
                        f"pack(order={call.options['order']}) needs a multiple of {word} "
                        "codes per row")]


def _unpack(call) -> list:
    """unpack(order=even_odd) reads whole 32-bit words: a multiple of 4 bytes per row."""
    word = call.options["order"].word // 2
    if word <= 1:
        return []
    return [Requirement(_t(call, "x").shape[-1], "%", Dim(word), "x",
                        f"unpack(order={call.options['order']}) needs a multiple of {word} "
                        "bytes per row")]


def _reduce(call) -> list:
    x = _t(call, "x")
    return [Requirement(x.shape[0], ">=", Dim(1), "x", "split-K reduce needs at least one split")]


def _rope(call) -> list:
    x, cos, sin = _t(call, "x"), _t(call, "cos"), _t(call, "sin")
    out = [Requirement(sin.shape[k], "==", cos.shape[k], "sin",
                       "the RoPE sin table must have the shape of the cos table")
           for k in range(min(cos.rank, sin.rank))]
    out.append(Requirement(mul_dim(cos.shape[1], Dim(2)), "<=", x.shape[2], "cos",
                           "the rotary dim 2 * cos.shape[1] must not exceed the head dim D"))
    o = call.options
    if o["mrope"] != MRope.NONE:
        hw = int(o["mrope_h"]) + int(o["mrope_w"])
        out.append(Requirement(_t(call, "pos").shape[0], "==", Dim(3), "pos",
                               "mrope positions are [3, T] (t, h, w rows)"))
        out.append(Requirement(Dim(hw), "<=", cos.shape[1], "cos",
                               f"mrope sections h + w = {hw} must fit the rotary half "
                               "cos.shape[1]"))
    return out


def cache_block_size(cache: TensorType, layout: CacheLayout) -> Dim:
    """Tokens per cache block of a physical cache type."""
    ax = CacheLayout(layout).axes
    if "BSX" in ax:
        return mul_dim(cache.shape[ax["BSX"]], cache.shape[ax["X"]])
    return cache.shape[ax["BS"]]


def cache_capacity(cache: TensorType, layout: CacheLayout) -> Dim:
    """Slots of a physical cache type: ``num_blocks * block_size``."""
    return mul_dim(cache.shape[0], cache_block_size(cache, layout))


def _cache_write(call) -> list:
    o = call.options
    x, cache, scales = _t(call, "x"), _t(call, "cache"), _t(call, "scales")
    layout = o["layout"]
    ax = layout.axes
    if cache is None or x is None or cache.rank != layout.rank or x.rank != 3:
        return []                         # the type rule has refused it already
    where = f"the {layout} cache"
    out = [Requirement(cache.shape[ax["H"]], "==", x.shape[1], "cache",
                       f"{where} must hold H heads of x [T, H, D]")]
    if "DX" in ax:
        # D % X first: decidable from x and the vector width alone (D/X may be a free dim)
        out.append(Requirement(x.shape[2], "%", cache.shape[ax["X"]], "x",
                               f"the head size D must be a multiple of {where}'s vector "
                               "width X"))
        out.append(Requirement(mul_dim(cache.shape[ax["DX"]], cache.shape[ax["X"]]), "==",
                               x.shape[2], "cache", f"{where} [B, H, D/X, BS, X] must hold "
                               "D = (D/X) * X columns of x"))
    else:
        out.append(Requirement(cache.shape[ax["D"]], "==", x.shape[2], "cache",
                               f"{where} must hold D columns of x [T, H, D]"))
    if "X" in ax and o.get("vec"):
        out.append(Requirement(cache.shape[ax["X"]], "==", Dim(int(o["vec"])), "cache",
                               f"{where}'s last dim must be the vector width vec"))
    if "XB" in ax and o.get("vec"):
        out.append(Requirement(cache.shape[ax["XB"]], "==", Dim(int(o["vec"])), "cache",
                               f"{where}'s token tile (dim {ax['XB']}) must be vec"))
    out.append(Requirement(x.shape[0], "<", Dim(MAX_CACHE_TOKENS), "x",
                           "a cache write takes fewer than 2**24 tokens per call"))
    if scales is None:
        return out
    nb, bs, h = cache.shape[0], cache_block_size(cache, layout), x.shape[1]
    quant, sl = o["quant"], o["scale_layout"]
    if quant == CacheQuant.STATIC:
        out.append(Requirement(scales.shape[0], ">=", Dim(1), "scales",
                               "a static cache scale needs one element"))
    elif quant == CacheQuant.PER_TOKEN and sl != ScaleLayout.DEFAULT:
        want, shape = ((nb, h, bs), "[NB, H, BS]") if sl == ScaleLayout.ASM else \
            ((nb, bs, h), "[NB, BS, H]")
        out += [Requirement(scales.shape[k], "==", want[k], "scales",
                            f"per_token scales with scale_layout={sl} are {shape}")
                for k in range(min(3, scales.rank))]
    elif quant == CacheQuant.PER_TOKEN:
        out.append(Requirement(scales.shape[0], "==", h, "scales",
                               "per_token scales [H, S] need one row per head"))
        out.append(Requirement(scales.shape[1], ">=", cache_capacity(cache, layout), "scales",
                               "per_token scales [H, S] need a column for every cache slot "
                               "(S >= num_blocks * block_size)"))
    elif quant == CacheQuant.PER_BLOCK and o.get("scale_block"):
        out += _super_block_scales(o, scales, cache, layout, h)
    elif quant == CacheQuant.PER_BLOCK:
        want = (nb, h) if sl == ScaleLayout.ASM else (h, nb)
        shape = "[NB, H]" if sl == ScaleLayout.ASM else "[H, NB]"
        out += [Requirement(scales.shape[k], "==", want[k], "scales",
                            f"per_block scales with scale_layout={sl} are {shape}")
                for k in range(min(2, scales.rank))]
    return out


def _super_block_scales(o, scales: TensorType, cache: TensorType, layout, h: Dim) -> list:
    """per_block with ``scale_block=SB``: one scale per SB tokens (a whole number of cache
    blocks), ``[H, NSB]`` (asm ``[NSB, H]``) with ``NSB * SB == NB * BS``."""
    sb, asm = int(o["scale_block"]), o["scale_layout"] == ScaleLayout.ASM
    if scales.rank != 2:
        return []
    nsb, heads = (scales.shape[0], scales.shape[1]) if asm else (scales.shape[1], scales.shape[0])
    shape = "[NSB, H]" if asm else "[H, NSB]"
    return [Requirement(Dim(sb), "%", cache_block_size(cache, layout), "cache",
                        f"scale_block={sb} must be a whole number of cache blocks"),
            Requirement(heads, "==", h, "scales",
                        f"per_block scales with scale_block are {shape}: one per head"),
            Requirement(mul_dim(nsb, Dim(sb)), "==", cache_capacity(cache, layout), "scales",
                        f"per_block scales {shape} with scale_block={sb} need NSB * {sb} == "
                        f"NB * BS (one scale per {sb} cache slots)")]


_RULES: dict[str, Callable] = {
    "act_mul": _even, "pack": _pack, "unpack": _unpack, "reduce": _reduce,
    "rope": _rope, "cache_write": _cache_write,
}


def call_requirements(call) -> list:
    """The bind-time :class:`Requirement` list of one stage call (empty for most stages)."""
    rule = _RULES.get(call.stage)
    return rule(call) if rule is not None else []


def _slots(call) -> list:
    cache = _t(call, "cache")
    layout = call.options["layout"]
    if cache is None or cache.rank != layout.rank:
        return []                         # the type rule has refused it already
    return [IndexOperand("slots", cache_capacity(cache, layout),
                         "the token is not written (nor its scale); a negative slot is "
                         "padding", error_below=False, error_above=True, bound_of="cache",
                         unique=True, samples=(1, 0))]


def _positions(call) -> list:
    return [IndexOperand("pos", _t(call, "cos").shape[0],
                         "the rotated dims of that token are NaN", error_below=True,
                         error_above=True, bound_of="cos")]


def _gather_rows(call) -> list:
    # packed ids: the row is (id & 0xFFFFFF) * topk + (id >> 24), a slot outside [0, topk)
    # is padding too (topk = 1 reads no slot)
    return [IndexOperand("idx", _t(call, "x").shape[0], "a zero row (padding)",
                         error_below=False, error_above=False, bound_of="x", samples=(1, 1))]


def _expert_ids(call) -> list:
    if call.operands.get("ids") is None:
        return []
    return [IndexOperand("ids", _t(call, "s").shape[0], "a zero row (padding)",
                         error_below=False, error_above=False, bound_of="s")]


_INDICES: dict[str, Callable] = {
    "cache_write": _slots, "rope": _positions, "gather": _gather_rows, "smooth": _expert_ids,
}


def index_operands(call) -> list:
    """The :class:`IndexOperand` list of one stage call (empty for most stages)."""
    rule = _INDICES.get(call.stage)
    return rule(call) if rule is not None else []
