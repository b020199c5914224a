"""``cache_write``: the paged KV-cache scatter (row space over (token, head) rows).

Each program row is one ``(t, h)`` of ``x [T, H, D]``; ``slot = slots[t]``, ``blk = slot //
BS``, ``off = slot % BS``; the D columns go to the layout's address (strides of the
output cache, last dim contiguous). ``slot < 0`` (padding) and slots past the cache are
skipped, and of two tokens with one slot only the later is written (its claim, decided
by a launch before this one: ``slot_claims.py``). The launcher initialises the output
cache (and scales) from the input ones (or the caller passes the same tensors to update
them in place).

quant: ``none`` (copy, float x rounded RNE to a float cache), ``static``
(``round(x * (1 / scales[0]))``), ``per_token`` (``s = amax_d / dtype_max`` stored per
(t, h), ``round(x * (1 / max(s, 1e-12)))``, ``KV_TOKEN_SCALE_FLOOR``). ``per_block`` needs the amax over all new
tokens of a block before any of them is written: the ``cache_block`` space
(``cache_block.py``) renders it as three kernels.
"""
from __future__ import annotations

from ....dialect.options import (KV_TOKEN_SCALE_FLOOR, CacheFloor, CacheLayout, CacheQuant, Recip,
                                  ScaleLayout, ZeroPolicy)
from ....dialect.types import dtype as qdtype
from .emit import COMMENT_OPTIONS, OUT_ROWS, STORE, Emitter, f32_literal
from ..kernel import dim_rule
from .slot_claims import claimed
from .stages_glue import round_float
from .stages_quant import codes
from .stores import storage_value


def cache_offset(em: Emitter, call, out, blk: str, h: str, off: str, d: str) -> str:
    layout, xw = call.options["layout"], call.options["vec"]
    nm = em.out_names[out]
    s = [f"{nm}_s{k}" for k in range(out.type.rank - 1)]
    if layout == CacheLayout.KEY:          # [blk, h, d // X, off, d % X]
        return f"{blk} * {s[0]} + {h} * {s[1]} + ({d} // {xw}) * {s[2]} + {off} * {s[3]} + {d} % {xw}"
    if layout == CacheLayout.VALUE:        # [blk, h, d, off]
        return f"{blk} * {s[0]} + {h} * {s[1]} + {d} * {s[2]} + {off}"
    if layout == CacheLayout.VALUE_ASM:    # [blk, h, off // X, d, off % X]
        return f"{blk} * {s[0]} + {h} * {s[1]} + ({off} // {xw}) * {s[2]} + {d} * {s[3]} + {off} % {xw}"
    if layout == CacheLayout.PRESHUFFLE:   # [blk, off // X, h, d // X, off % X, d % X]
        return (f"{blk} * {s[0]} + ({off} // {xw}) * {s[1]} + {h} * {s[2]} + ({d} // {xw}) * "
                f"{s[3]} + ({off} % {xw}) * {s[4]} + {d} % {xw}")
    return f"{blk} * {s[0]} + {off} * {s[1]} + {h} * {s[2]} + {d}"     # flash [blk, off, h, d]


def check_vec(em: Emitter, call) -> None:
    """The launch check that the layout's vector dims are ``vec``."""
    layout, cache, vec = call.options["layout"], call.operands["cache"], call.options["vec"]
    for name in ("XB", "X"):
        if name in layout.axes:
            k = layout.axes[name]
            em.check(f"{dim_rule(cache.type.shape[k])} == {vec}",
                     f"{cache.name}: the {layout} layout's " + (
                         "last dim" if k == layout.rank - 1 else f"dim {k}") +
                     f" must be vec={vec}")


def block_size(call, dim) -> str:
    """Tokens per cache block as text, ``dim`` spelling a Dim (a kernel expression, or a
    launch rule): the cache's BS dim, or BS/X times the vector width."""
    shape, axes = call.operands["cache"].type.shape, call.options["layout"].axes
    if "BS" in axes:
        return dim(shape[axes["BS"]])
    return f"({dim(shape[axes['BSX']])} * {call.options['vec']})"


def slot_prologue(em: Emitter, call) -> tuple:
    """Per (t, h) row: (lead, cols, slot, ok, blk, off) registers of a cache write."""
    x, cache, slots = call.operands["x"], call.operands["cache"], call.operands["slots"]
    lead = em.domain_lead
    d_dim = x.type.shape[2]
    cols = em.natural(em.base_block(d_dim), d_dim)
    em.stage_comment(call, f": slot = {slots.name}[t], skip slot < 0")
    slot = em.let("slot", f"{em.element(slots, lead.names[:1], lead.mask).var}.to(tl.int64)")
    bs = block_size(call, em.dim)
    n_slots = f"{em.dim(cache.type.shape[0])} * {bs}"
    ok = em.let("slot_ok", f"rmask & ({slot} >= 0) & ({slot} < {n_slots})")
    region = em.ctx.claims.get(id(call))
    if region is None:
        raise em.unsupported(call, "a cache write needs its slot claims (slot_claims.py)")
    ok = claimed(em, region, slot, ok, lead.names[0])
    blk = em.let("blk", f"{slot} // {bs}")
    off = em.let("off", f"{slot} % {bs}")
    return lead, cols, slot, ok, blk, off


def quotient(em: Emitter, options: dict, x: str, s: str) -> str:
    """``x * (1 / s)`` (``recip=mul_rcp``) or ``x / s`` (``recip=div``), a register."""
    div = em.helper("qf_div")
    if options["recip"] == Recip.DIV:
        return em.let("v", f"{div}({x}, {s})")
    return em.let("v", f"{x} * {em.let('inv', f'{div}(1.0, {s})')}")


def stored_scale(em: Emitter, options: dict, s: str) -> str:
    """The scale as stored: a 0 becomes 1 with ``zero=one``."""
    if options["zero"] == ZeroPolicy.ONE:
        return em.let("s_st", f"tl.where({s} == 0.0, 1.0, {s})")
    return s


def s_cache_write(em: Emitter, call, v) -> None:
    if (s_cache_write, id(call)) in em.memo:      # one scatter for both results
        return
    em.memo[(s_cache_write, id(call))] = True
    o = call.options
    x, cache, slots, scales = (call.operands.get(k) for k in ("x", "cache", "slots", "scales"))
    quant, layout = o["quant"], o["layout"]
    if quant == CacheQuant.PER_BLOCK:
        raise em.unsupported(call, "quant=per_block needs the amax over all new tokens of a "
                                   "cache block: render it in the cache_block space")
    check_vec(em, call)
    lead, cols, slot, ok, blk, off = slot_prologue(em, call)
    h = lead.names[1]
    xv = em.value_at(x, lead, cols)
    cdt = cache.type.dtype.name
    sreg = None
    if quant == CacheQuant.NONE:
        val = xv if xv.kind != "f32" else type(xv)(round_float(em, xv.var, cdt, "cval"), "f32")
    else:
        dmax = o["dtype_max"] or qdtype(cdt).max
        div = em.helper("qf_div")
        xf = em.f32(xv)
        if quant == CacheQuant.STATIC:
            qs = em.element(scales, ("0",), None).var
        else:   # per_token: one scale per (t, h)
            amax = em.let("amax", f"{em.lib('qft_amax')}({xf}, {cols.mask}, 1)")
            if o["amax_floor"]:
                lo = f32_literal(o["amax_floor"])
                amax = em.let("amax_fl", f"tl.where({amax} < {lo}, {lo}, {amax})")
            sreg = em.let("s", f"{div}({amax}, {f32_literal(dmax)})")
            if o["pow2"]:                   # ue8m0: rounded up to a power of two
                sreg = em.let("s_p2", f"{em.helper('qf_pow2_ceil')}({sreg})")
            if o["floor"] == CacheFloor.FLOOR:
                lo = f32_literal(KV_TOKEN_SCALE_FLOOR)
                qs = f"tl.where({sreg} < {lo}, {lo}, {sreg})"
            else:                               # the scale as is; a zero row divides by 1
                qs = em.let("qs", f"tl.where({sreg} == 0.0, 1.0, {sreg})")
        val = codes(em, quotient(em, o, xf, qs), cdt, dmax, o["mode"], True)
        if sreg is not None:
            sreg = stored_scale(em, o, sreg)
    out, scales_out = call.results[0], (call.results[1] if len(call.results) > 1 else None)
    if out in em.out_names:
        addr = cache_offset(em, call, out, blk, h, off, cols.var)
        em.emit(f"tl.store({em.out_names[out]}_ptr + {addr}, {storage_value(em, val, cdt)}, "
                f"mask={ok} & {cols.mask})")
    if scales_out is not None and scales_out in em.out_names:
        nm = em.out_names[scales_out]
        if o["scale_layout"] == ScaleLayout.ASM:   # [NB, H, BS] at [blk, h, off]
            addr = f"{blk} * {nm}_s0 + {h} * {nm}_s1 + {off}"
            mask = ok
        elif o["scale_layout"] == ScaleLayout.TOKEN:   # [NB, BS, H] at [blk, off, h]
            addr = f"{blk} * {nm}_s0 + {off} * {nm}_s1 + {h}"
            mask = ok
        else:                               # [H, S] at [h, slot]
            addr = f"{h} * {nm}_s0 + {slot}"
            mask = f"{ok} & ({slot} < {em.dim(scales_out.type.shape[1])})"
        em.emit(f"tl.store({nm}_ptr + {addr}, {sreg}, mask={mask})")


STORE["cache_write"] = s_cache_write
# a program row is one (token, head) of x, for the cache and its scales alike
OUT_ROWS["cache_write"] = lambda call, v: tuple(call.operands["x"].type.shape[:-1])
COMMENT_OPTIONS["cache_write"] = ("layout", "quant")
