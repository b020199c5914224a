"""``cache_write``: paged KV-cache writes through a slot mapping (registered in
``HANDLERS`` next to :mod:`.stages`); formulas: docs/semantics.md and the reference's
``cache.py`` / ``cache_quant.py``.

The kernel walks the tokens' rows ``(t, h)`` of ``x [T, H, D]`` and writes row ``(t, h)``
into ``slot = slots[t]``, ``blk = slot / BS``, ``off = slot % BS``, at the layout's place:

=============  ========================  ==================================
layout         cache                     element ``(t, h, d)`` at
=============  ========================  ==================================
``key``        ``[NB, H, D/X, BS, X]``   ``[blk, h, d / X, off, d % X]``
``value``      ``[NB, H, D, BS]``        ``[blk, h, d, off]``
``value_asm``  ``[NB, H, BS/X, D, X]``   ``[blk, h, off / X, d, off % X]``
``flash``      ``[NB, BS, H, D]``        ``[blk, off, h, d]``
``preshuffle`` ``[NB, BS/XB, H, D/X,     ``[blk, off / XB, h, d / X, off % XB,
               XB, X]``                  d % X]`` (16x16 MFMA tiles)
=============  ========================  ==================================

A token writes when ``0 <= slot < NB * BS`` (a negative slot is padding, one past the
cache is skipped) and no later token claims the same slot (the later token wins): each
row checks the tokens after its own (``O(T)`` per row: correct, not fast). The cache
(and a per-token scale tensor) are updated in place: the kernel stores into its output,
which the runner hands over as the parameter's tensor (``updated_params``).

``quant=per_block`` (the ``cache_block`` space) is one program per scale instead: it
scans the tokens for those that write into its slots, then re-quantises and writes
(:func:`_per_block`).
"""
from __future__ import annotations

from ...dialect.options import (KV_BLOCK_AMAX_FLOOR, KV_TOKEN_SCALE_FLOOR, BlockRequant,
                                CacheFloor, CacheLayout, CacheQuant, QuantTarget, Recip,
                                RoundMode, ScaleLayout, ZeroPolicy)
from . import numerics as nx
from .stages import HANDLERS, _operand, code_fn, elementwise_inputs, lowers
from .values import Scope, Val

__all__ = ["lower_cache_write"]

#: what is lowered: the cache layouts (the module table), the quant modes and the
#: per-token scale layouts (the scales' index of a written row); others are refused
_LAYOUTS = (CacheLayout.KEY, CacheLayout.VALUE, CacheLayout.VALUE_ASM, CacheLayout.FLASH,
            CacheLayout.PRESHUFFLE)
_QUANTS = (CacheQuant.NONE, CacheQuant.STATIC, CacheQuant.PER_TOKEN, CacheQuant.PER_BLOCK)
_SCALE_LAYOUTS = (ScaleLayout.DEFAULT, ScaleLayout.ASM, ScaleLayout.TOKEN)


def _claims(r, slots, cap: str) -> tuple:
    """Row-level ``(slot, writes)``: the row's slot (a signed index) and whether its token
    writes it (in range, and the last token with that slot)."""
    e = r.e
    tokens = r.dim(slots, 0)

    def slot_of(s: Scope) -> str:
        return r.load_index(slots, [s.lead[0]])

    slot = Val("row", "index", slot_of)

    def writes(s: Scope) -> str:
        me = r.at(s, slot)
        return _writes(r, slots, s.lead[0], me, cap, tokens)

    claim = Val("row", "i1", writes)
    r.forced += [slot, claim]
    return slot, claim


def _writes(r, slots, t: str, me: str, cap: str, tokens: str) -> str:
    """Whether token ``t`` (slot ``me``) writes: ``0 <= me < cap`` and no later token has
    the same slot (an i1)."""
    e = r.e
    t2, ok, res = e.fresh("t"), e.fresh("last"), e.fresh("claim")
    first = e.bin("addi", t, e.idx(1), "index")
    with e.block(f"{res} = scf.for {t2} = {first} to {tokens} step {e.idx(1)} "
                 f"iter_args({ok} = {e.const(1, 'i1')}) -> (i1) {{"):
        other = e.cmpi("ne", r.load_index(slots, [t2]), me, "index")
        e.line(f"scf.yield {e.bin('andi', ok, other, 'i1')} : i1")
    return e.bin("andi", r.in_range(me, cap), res, "i1")


def _place(r, layout: CacheLayout, cache, s: Scope, blk: str, off: str) -> list:
    """The cache index of element ``(t, h, d)`` of the scope (``d``: its column)."""
    e = r.e
    h, d = s.lead[1], s.col
    if layout is CacheLayout.KEY:
        x = r.dim(cache, 4)
        return [blk, h, e.bin("divui", d, x, "index"), off, e.bin("remui", d, x, "index")]
    if layout is CacheLayout.VALUE:
        return [blk, h, d, off]
    if layout is CacheLayout.VALUE_ASM:
        x = r.dim(cache, 4)
        return [blk, h, e.bin("divui", off, x, "index"), d, e.bin("remui", off, x, "index")]
    if layout is CacheLayout.PRESHUFFLE:
        xb, x = r.dim(cache, 4), r.dim(cache, 5)
        return [blk, e.bin("divui", off, xb, "index"), h, e.bin("divui", d, x, "index"),
                e.bin("remui", off, xb, "index"), e.bin("remui", d, x, "index")]
    return [blk, off, h, d]


def _block_size(r, layout: CacheLayout, cache) -> str:
    """BS of the cache's shape (see the module table)."""
    e = r.e
    if layout in (CacheLayout.KEY, CacheLayout.VALUE):
        return r.dim(cache, 3)
    if layout is CacheLayout.VALUE_ASM:
        return e.bin("muli", r.dim(cache, 2), r.dim(cache, 4), "index")
    if layout is CacheLayout.PRESHUFFLE:
        return e.bin("muli", r.dim(cache, 1), r.dim(cache, 4), "index")
    return r.dim(cache, 1)


@lowers("layout", "quant", "scale_layout", "dtype_max", "mode", "vec", "zero", "floor",
        "recip", "amax_floor", "pow2", "requant", "scale_block")
def lower_cache_write(r, call) -> list:
    """Write ``x [T, H, D]`` at ``slot = slots[t]`` (docs/semantics.md, ``cache_write``):
    ``none``: a copy (rounded RNE to a float cache's dtype); ``static``:
    ``q = round(x (*1/ or /) scales[0])``; ``per_token``: per ``(t, h)``
    ``s = max(amax_d |x|, amax_floor) / dtype_max`` (rounded up to a power of two with
    ``pow2``), stored at ``[h, slot]`` (``asm``: ``[blk, h, off]``, ``token``:
    ``[blk, off, h]``; a 0 stored as 1 with ``zero=one``), ``q = round(x / max(s, 1e-12))``
    (``floor=none``: ``x / s``, 1 for a 0). round: fp8 RNE saturating at ``+-dtype_max``,
    int8 by ``mode``.
    ``per_block``: :func:`_per_block` (the cache_block space)."""
    opt = call.options
    quant, layout = CacheQuant(opt["quant"]), CacheLayout(opt["layout"])
    if quant not in _QUANTS:
        r.refuse(call, f"quant={quant}")
    if layout not in _LAYOUTS:
        r.refuse(call, f"layout={layout}")
    cache, slots, sv = (call.operands[k] for k in ("cache", "slots", "scales"))
    if cache not in r.args:
        r.refuse(call, "a cache computed in the kernel")
    x = _operand(r, call.operands["x"])
    if x.level != "elem" or call.operands["x"].type.rank != 3:
        r.refuse(call, "x that is not [T, H, D] per element")
    e = r.e
    bs = _block_size(r, layout, cache)
    bs_safe = e.bin("maxui", bs, e.idx(1), "index")
    slot, claim = _claims(r, slots, e.bin("muli", r.dim(cache, 0), bs, "index"))
    cols = r.cols

    def blk_off(s: Scope) -> tuple:
        me = r.at(s, slot)
        return e.bin("divui", me, bs_safe, "index"), e.bin("remui", me, bs_safe, "index")

    results = []
    if quant is CacheQuant.NONE:
        ctype = cache.type.dtype
        if ctype.is_float != call.operands["x"].type.dtype.is_float or not ctype.is_float and \
                ctype != call.operands["x"].type.dtype:
            r.refuse(call, f"quant=none of {call.operands['x'].type.dtype.name} into a "
                           f"{ctype.name} cache")
        codes = x
    else:
        target = QuantTarget(cache.type.dtype.name)
        dm = float(opt["dtype_max"]) or target.dtype.max
        q = code_fn(r, target, dm, True, RoundMode(opt["mode"]))
        mul_rcp = Recip(opt["recip"]) is Recip.MUL_RCP

        def divide(v: str, s: str) -> str:
            if mul_rcp:
                return e.bin("mulf", v, e.bin("divf", e.f32(1.0), s, "f32"), "f32")
            return e.bin("divf", v, s, "f32")
        if quant is CacheQuant.PER_BLOCK:
            return _per_block(r, call, x, layout, (cache, slots, sv), bs, q, divide, target,
                              dm)
        if quant is CacheQuant.STATIC:
            s_static = r.load(sv, lambda s: [e.idx(0)], "row")
            codes = Val("elem", "i32", lambda s: q(divide(r.at(s, x), r.at(s, s_static))),
                        width=x.width)
        else:
            codes, scale = _per_token(r, call, x, cols, dm, q, divide, slot, claim, blk_off)
            results.append(scale)

    def store(s: Scope, out: int) -> None:
        with e.block(f"scf.if {r.at(s, claim)} {{"):
            r.store(s, out, codes, _place(r, layout, cache, s, *blk_off(s)))
    return [Val("elem", codes.type, codes.get, width=x.width, store=store)] + results


def _per_token(r, call, x: Val, cols: str, dm: float, q, divide, slot, claim, blk_off):
    """The per-token codes and the scale Val (stored at the row's scale index)."""
    e, opt = r.e, call.options
    sv = call.operands["scales"]
    layout = ScaleLayout(opt["scale_layout"])
    if layout not in _SCALE_LAYOUTS:
        r.refuse(call, f"scale_layout={layout}")
    amax = Val("row", "f32", lambda s: r.reduce_cols(
        s, lambda c: nx.abs_f32(e, r.at(c, x)), "maximumf", ub=cols))
    floor_at, pow2 = float(opt.get("amax_floor") or 0.0), bool(opt.get("pow2"))

    def scale_of(s: Scope) -> str:
        a = r.at(s, amax)
        if floor_at:
            a = e.bin("maximumf", a, e.f32(floor_at), "f32")
        v = e.bin("divf", a, e.f32(dm), "f32")
        return nx.pow2_ceil(e, v) if pow2 else v
    s_val = Val("row", "f32", scale_of)
    r.forced += [amax, s_val]
    floor = CacheFloor(opt["floor"]) is CacheFloor.FLOOR

    def quotient(s: Scope) -> str:
        v = r.at(s, s_val)
        if floor:
            return e.bin("maximumf", v, e.f32(KV_TOKEN_SCALE_FLOOR), "f32")
        return e.select(e.cmpf("oeq", v, e.f32(0.0)), e.f32(1.0), v, "f32")
    qs = Val("row", "f32", quotient)
    r.forced.append(qs)
    codes = Val("elem", "i32", lambda s: q(divide(r.at(s, x), r.at(s, qs))), width=x.width)

    def stored(s: Scope) -> str:
        v = r.at(s, s_val)
        if ZeroPolicy(opt["zero"]) is ZeroPolicy.ONE:
            return e.select(e.cmpf("oeq", v, e.f32(0.0)), e.f32(1.0), v, "f32")
        return v
    def place(s: Scope, out: int) -> None:
        me, h = r.at(s, slot), s.lead[1]
        if layout in (ScaleLayout.ASM, ScaleLayout.TOKEN):
            blk, off = blk_off(s)
            idx = [blk, h, off] if layout is ScaleLayout.ASM else [blk, off, h]
            ok = r.at(s, claim)
        else:                              # [H, S]: a slot past S is not stored
            idx = [h, me]
            ok = e.bin("andi", r.at(s, claim), e.cmpi("slt", me, r.dim(sv, 1), "index"), "i1")
        with e.block(f"scf.if {ok} {{"):
            r.store(s, out, scale, idx)
    scale = Val("row", "f32", stored, store=place)
    return codes, scale


# ------------------------------------------------------------------ per_block
def _per_block(r, call, x: Val, layout, tensors: tuple, bs: str, q, divide, target,
               dm: float) -> list:
    """``quant=per_block`` (the ``cache_block`` space, ``requant=grow``, AITER's HIP
    kernel): one program per scale ``(sblk, h)`` (``SB = scale_block or BS`` slots each):
    its new tokens (written, ``slot / SB == sblk``) give ``new = max(amax, 1e-6) / dtype_max``
    (``floor=none``: no floor; a 0 stored as 1 with ``zero=one``); with ``off_first`` their
    smallest offset, ``old < new`` and ``off_first > 0`` re-quantise entries
    ``[0, off_first)`` as ``round(decode(q) * (old / new))`` and take ``new``, ``old >= new``
    (or NaN) keeps ``old``, ``off_first == 0`` takes ``new``; the new tokens are
    ``round(x / scale)`` (1 for a 0 scale). A scale no token touches is left as it is.
    ``requant=always`` (AITER's torch reference) re-quantises the whole super-block
    instead (:func:`rewrite` below). The whole body is written here (``Renderer.body``)."""
    e, opt = r.e, call.options
    cache, slots, sv = tensors
    always = BlockRequant(opt["requant"]) is BlockRequant.ALWAYS
    if not always and BlockRequant(opt["requant"]) is not BlockRequant.GROW:
        r.refuse(call, f"requant={opt['requant']}")
    if always and not elementwise_inputs(r, call.operands["x"]):
        r.refuse(call, "requant=always of an x that is not elementwise in the kernel's inputs")
    s_layout = ScaleLayout(opt["scale_layout"])
    if s_layout not in (ScaleLayout.DEFAULT, ScaleLayout.ASM):
        r.refuse(call, f"scale_layout={s_layout} for quant=per_block")
    asm = s_layout is ScaleLayout.ASM
    sb = e.idx(int(opt["scale_block"])) if int(opt["scale_block"]) else bs
    cap = e.bin("muli", r.dim(cache, 0), bs, "index")
    tokens, cols = r.dim(slots, 0), r.cols
    floor = CacheFloor(opt["floor"]) is CacheFloor.FLOOR
    zero_one = ZeroPolicy(opt["zero"]) is ZeroPolicy.ONE
    outs = [r.kernel.returns.index(v) for v in call.results]

    def claim(t: str, b: str) -> tuple:
        me = r.load_index(slots, [t])
        ok = e.bin("andi", _writes(r, slots, t, me, cap, tokens),
                   e.cmpi("eq", e.bin("divui", me, sb, "index"), b, "index"), "i1")
        return me, ok

    def store_code(s: Scope, slot: str, code: str) -> None:
        blk, off = e.bin("divui", slot, bs, "index"), e.bin("remui", slot, bs, "index")
        r.store_raw(outs[0], e.cast("trunci", code, "i32", "i8"),
                    _place(r, layout, cache, s, blk, off))

    def cols_loop(fn) -> None:
        start, step = r.m.par_bounds(e, e.idx(0), 1)
        d = e.fresh("d")
        with e.block(f"scf.for {d} = {start} to {cols} step {step} {{"):
            fn(d)

    def block(h: str, b: str) -> None:
        # the new tokens of this scale: count, amax, smallest offset
        t, n, am, fo, res = (e.fresh(k) for k in ("t", "n", "am", "fo", "new"))
        with e.block(f"{res}:3 = scf.for {t} = {e.idx(0)} to {tokens} step {e.idx(1)} "
                     f"iter_args({n} = {e.idx(0)}, {am} = {e.f32(0.0)}, {fo} = {sb}) -> "
                     f"(index, f32, index) {{"):
            me, ok = claim(t, b)
            got = e.fresh("tok")
            e.line(f"{got}:3 = scf.if {ok} -> (index, f32, index) {{")
            e._indent += 1
            a = r.reduce_cols(Scope(lead=(t, h)), lambda c: nx.abs_f32(e, r.at(c, x)),
                              "maximumf", ub=cols)
            e.line(f"scf.yield {e.bin('addi', n, e.idx(1), 'index')}, "
                   f"{e.bin('maximumf', am, a, 'f32')}, "
                   f"{e.bin('minui', fo, e.bin('remui', me, sb, 'index'), 'index')} : "
                   f"index, f32, index")
            e._indent -= 1
            e.line("} else {")
            e.line(f"  scf.yield {n}, {am}, {fo} : index, f32, index")
            e.line("}")
            e.line(f"scf.yield {got}#0, {got}#1, {got}#2 : index, f32, index")
        with e.block(f"scf.if {e.cmpi('ugt', f'{res}#0', e.idx(0), 'index')} {{"):
            sidx = [b, h] if asm else [h, b]
            old = r.load_at(sv, sidx)
            if always:
                scale = rewrite(h, b, old)
            else:
                scale = grow(h, b, res, old)
            with r.m.leader(e):
                r.store_raw(outs[1], scale, sidx)

    def block_scale(amax: str) -> str:
        """``max(amax, 1e-6) / dtype_max`` (no floor with ``floor=none``), 0 -> 1 with
        ``zero=one``."""
        if floor:
            amax = e.bin("maximumf", amax, e.f32(KV_BLOCK_AMAX_FLOOR), "f32")
        new = e.bin("divf", amax, e.f32(dm), "f32")
        if zero_one:
            new = e.select(e.cmpf("oeq", new, e.f32(0.0)), e.f32(1.0), new, "f32")
        return new

    def quotient(scale: str) -> str:
        return e.select(e.cmpf("oeq", scale, e.f32(0.0)), e.f32(1.0), scale, "f32")

    def grow(h: str, b: str, res: str, old: str) -> str:
        """requant=grow (AITER's HIP kernel), see :func:`_per_block`."""
        new = block_scale(f"{res}#1")
        later = e.cmpi("ugt", f"{res}#2", e.idx(0), "index")
        grows = e.cmpf("olt", old, new)
        scale = e.select(later, e.select(grows, new, old, "f32"), new, "f32")
        with e.block(f"scf.if {e.bin('andi', later, grows, 'i1')} {{"):
            ratio = e.bin("divf", old, new, "f32")
            off = e.fresh("off")
            with e.block(f"scf.for {off} = {e.idx(0)} to {res}#2 step {e.idx(1)} {{"):
                slot = e.bin("addi", e.bin("muli", b, sb, "index"), off, "index")

                def requant(d: str) -> None:
                    s = Scope(lead=(None, h), col=d)
                    blk = e.bin("divui", slot, bs, "index")
                    place = _place(r, layout, cache, s, blk, e.bin("remui", slot, bs,
                                                                   "index"))
                    v = nx.decode_code(e, r.load_at(cache, place), target)
                    store_code(s, slot, q(e.bin("mulf", v, ratio, "f32")))
                cols_loop(requant)
        qs = quotient(scale)
        t2 = e.fresh("t")
        with e.block(f"scf.for {t2} = {e.idx(0)} to {tokens} step {e.idx(1)} {{"):
            me, ok = claim(t2, b)
            with e.block(f"scf.if {ok} {{"):
                cols_loop(lambda d: store_code(
                    Scope(lead=(t2, h), col=d), me,
                    q(divide(r.at(Scope(lead=(t2, h), col=d), x), qs))))
        return scale

    def rewrite(h: str, b: str, old: str) -> str:
        """requant=always (AITER's torch reference): ``v = decode(q) * old`` over the whole
        super-block, a new token's x at its offset, ``s`` from ``amax(v)``, every entry
        ``round(v / s)`` (x is elementwise in the inputs: read at any token)."""
        def writer(off: str) -> str:
            """The token writing offset ``off`` of this scale's slots, or -1."""
            t, w, res = e.fresh("t"), e.fresh("w"), e.fresh("wr")
            with e.block(f"{res} = scf.for {t} = {e.idx(0)} to {tokens} step {e.idx(1)} "
                         f"iter_args({w} = {e.idx(-1)}) -> (index) {{"):
                me, ok = claim(t, b)
                hit = e.bin("andi", ok, e.cmpi("eq", e.bin("remui", me, sb, "index"), off,
                                               "index"), "i1")
                e.line(f"scf.yield {e.select(hit, t, w, 'index')} : index")
            return res

        def value(off: str, w: str, d: str) -> str:
            slot = e.bin("addi", e.bin("muli", b, sb, "index"), off, "index")
            s = Scope(lead=(None, h), col=d)

            def old_value() -> str:
                place = _place(r, layout, cache, s, e.bin("divui", slot, bs, "index"),
                               e.bin("remui", slot, bs, "index"))
                return e.bin("mulf", nx.decode_code(e, r.load_at(cache, place), target), old,
                             "f32")
            return e.if_else(e.cmpi("sge", w, e.idx(0), "index"),
                             lambda: r.at(Scope(lead=(w, h), col=d), x), old_value, "f32")

        off, acc, res = e.fresh("off"), e.fresh("acc"), e.fresh("amax")
        with e.block(f"{res} = scf.for {off} = {e.idx(0)} to {sb} step {e.idx(1)} "
                     f"iter_args({acc} = {e.f32(0.0)}) -> (f32) {{"):
            w = writer(off)
            a = r.reduce_cols(Scope(lead=(None, h)), lambda c: nx.abs_f32(
                e, value(off, w, c.col)), "maximumf", ub=cols)
            e.line(f"scf.yield {e.bin('maximumf', acc, a, 'f32')} : f32")
        scale = block_scale(res)
        qs = quotient(scale)
        off = e.fresh("off")
        with e.block(f"scf.for {off} = {e.idx(0)} to {sb} step {e.idx(1)} {{"):
            w = writer(off)
            slot = e.bin("addi", e.bin("muli", b, sb, "index"), off, "index")
            cols_loop(lambda d: store_code(Scope(lead=(None, h), col=d), slot,
                                           q(divide(value(off, w, d), qs))))
        return scale

    def body() -> None:
        d0, d1 = r.dim(sv, 0), r.dim(sv, 1)
        with r.m.rows(e, d0) as i0:
            i1 = e.fresh("s")
            with e.block(f"scf.for {i1} = {e.idx(0)} to {d1} step {e.idx(1)} {{"):
                block(*((i1, i0) if asm else (i0, i1)))
    r.body = body
    return [Val("elem", "i32", lambda s: "", width=x.width),
            Val("row", "f32", lambda s: "")]


HANDLERS["cache_write"] = lower_cache_write
