"""``scale``, ``round``, ``pack`` and ``dequant``: amax, scales, E8M0 bytes, codes and
their values.

Groups: ``per_token`` is a per-row reduction ([BLOCK_M, 1]); ``per_1xK`` / ``mx`` evaluate
the input at natural columns ``arange(0, B)`` and reshape to ``[BLOCK_M, B/K, K]``, so a
group scale exists at the natural columns of the scale (``B/K`` of them); ``round`` with a
group scale reshapes the same way. ``per_128x128`` lives in the tile space (one tile per
program: the scale is a scalar). Formulas: docs/semantics.md, reference ``quant.py``.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional

from ....dialect.options import (E8M0Mode, Granularity, PackOrder, QuantTarget, Recip,
                                  RoundMode, ZeroPolicy)
from .emit import (COMMENT_OPTIONS, NAT_BLOCK, OUT_ROWS, RENDER, ROW, STORE, Cols, Emitter,
                   Reg, f32_literal)
from .stages_glue import round_float
from .stores import scalar_store, storage_value, store_plain, store_at

__all__ = ["scale_from_amax", "codes", "E8M0_MODE_CODES"]

#: The device library's number for each E8M0 mode (``numerics_codes.QF_E8M0_*``; codegen
#: does not import the device library, a test keeps the two equal).
E8M0_MODE_CODES = {E8M0Mode.ROUNDUP: 0, E8M0Mode.EVEN: 1, E8M0Mode.RNE_LEGACY: 2,
                   E8M0Mode.FLOOR: 3, E8M0Mode.CEIL: 4}


def scale_from_amax(em: Emitter, call, amax: str) -> str:
    """Non-mx scale with the zero policy: ``s = amax / dtype_max`` (fp32 registers), then
    with ``pow2`` the power of two at or above it."""
    o = call.options
    div = em.helper("qf_div")
    dm = f32_literal(o["dtype_max"])
    if o["zero"] == ZeroPolicy.FLOOR:
        fl = f32_literal(o["amax_floor"])
        s = em.let("s", f"{div}(tl.where({amax} < {fl}, {fl}, {amax}), {dm})")
    else:
        s = em.let("s", f"{div}({amax}, {dm})")
    if o["zero"] == ZeroPolicy.ONE:
        s = em.let("s", f"tl.where({s} == 0.0, 1.0, {s})")
    if o.get("pow2"):
        s = em.let("s", f"{em.helper('qf_pow2_ceil')}({s})")
    return s


def codes(em: Emitter, v: str, target: str, dtype_max: float, mode: str, sat: bool,
          bounded: bool = False) -> Reg:
    """fp32 ``v`` -> codes of ``target`` (u8 for fp8 / E2M1, i8 for int8 / int4).
    ``bounded``: v is never NaN and rounds into the code range (see _bounded_by_own_scale)."""
    target = QuantTarget(target)
    if target.is_fp8:
        fnuz = target == QuantTarget.FP8_E4M3FNUZ
        fn = "qf_fp8_bits_finite" if bounded else "qf_fp8_bits"
        return Reg(em.let("q", f"{em.helper(fn)}({v}, {fnuz}, "
                               f"{f32_literal(dtype_max)}, {bool(sat)}, NATIVE)"), "u8")
    rne = mode == RoundMode.RNE
    if target.is_int:
        if bounded:
            return Reg(em.let("q", f"{em.helper('qf_int_codes_bounded')}({v}, {rne})"), "i8")
        lo, hi = target.int_bounds(dtype_max, sat)
        return Reg(em.let("q", f"{em.helper('qf_int_codes')}({v}, {rne}, {lo}, {hi})"), "i8")
    fn = "qf_e2m1_codes_half_up" if mode == RoundMode.HALF_UP else "qf_e2m1_codes"
    return Reg(em.let("q", f"{em.helper(fn)}({v})"), "u8")


def _quantise(em: Emitter, call, x: str, s: str, mx: bool, hint: str = "q",
              mx_amax: Optional[str] = None) -> Reg:
    """The ``round`` formula on registers x and s (already broadcast to each other).

    Where the general formula spends instructions per element on cases a program can rule
    out at once (a zero scale; NaN lanes and out-of-range quotients when ``s`` is a scale of
    this very ``x``), the quotient is computed under ``if qf_scale_fast_ok(s)`` (every
    scale of the program normal and in range) without them, and by the general formula
    otherwise, then made safe for the shared conversion (qf_*_prepare). Both give the
    codes of the general formula (docs/semantics.md, "fast paths"). The branch yields fp32
    quotients, not codes: bytes out of an ``if`` are unpacked to a register each."""
    o = call.options
    if mx:
        if o["dtype"] == QuantTarget.FP4_E2M1 and mx_amax is not None and \
                o["mode"] == RoundMode.RNE:
            return _e2m1_pow2(em, x, s, mx_amax, hint)
        v = em.let("v", f"{x} * {em.helper('qf_e8m0_inv_scale')}({s})")
        return codes(em, v, o["dtype"], o["dtype_max"], o["mode"], o["sat"])
    may_zero = _scale_may_be_zero(em, call.operands["s"])
    bounded = _bounded_by_own_scale(em, call)
    if may_zero or bounded:
        need_fma = bounded and o["recip"] == Recip.DIV
        ok = em.let("fast", f"{em.helper('qf_scale_fast_ok')}({s}, {need_fma})")

        def fast() -> str:
            if o["recip"] == Recip.DIV and bounded:
                return f"{em.helper('qf_div_bounded')}({x}, {s})"
            if o["recip"] == Recip.DIV:
                return f"{em.helper('qf_div_codes')}({x}, {s})"
            return f"{x} * {em.helper('qf_div')}(1.0, {s})"

        def general() -> str:
            slow = _general_quotient(em, call, x, s, may_zero)
            return _prepare(em, slow, o) if bounded else slow

        v, _ = _fast_or_general(em, ok, fast, general, "v")
    else:
        v = _general_quotient(em, call, x, s, False)
    q = codes(em, v, o["dtype"], o["dtype_max"], o["mode"], o["sat"], bounded)
    return Reg(em.let(hint, q.var), q.kind)


def _e2m1_pow2(em: Emitter, x: str, s: str, amax: str, hint: str) -> Reg:
    """E2M1 codes of x under its own E8M0 scale bytes s (``amax``: the [rows, groups] amax
    behind them): where qf_e8m0_pow2_ok holds for the whole program, straight from x's bits
    (qf_e2m1_codes_pow2: no multiply, no subnormal branch, no NaN select); otherwise the
    general x * 2^-k and qf_e2m1_codes. Both yield int32 codes, and the rest of the output
    section (pack, store) is copied into each branch (docs/semantics.md, "fast paths")."""
    ok = em.let("fast", f"{em.helper('qf_e8m0_pow2_ok')}({s}, {amax}[:, :, None])")

    def general() -> str:
        v = em.let("v", f"{x} * {em.helper('qf_e8m0_inv_scale')}({s})")
        return f"{em.helper('qf_e2m1_codes')}({v}).to(tl.int32)"

    q, else_at = _fast_or_general(
        em, ok, lambda: f"{em.helper('qf_e2m1_codes_pow2')}({x}, {s})", general, hint)
    em.fork_tail(else_at)       # pack and store in each branch: no 32 codes across a join
    return Reg(q, "i32")        # codes 0..15 in int32 (a store converts them to bytes)


def _fast_or_general(em: Emitter, ok: str, fast, general, hint: str) -> tuple:
    """Emit ``if ok: r = fast() else: tl.debug_barrier(); r = general()`` (``fast`` and
    ``general`` emit their own lines and return r's expression); ``(r, index of the else
    line)``. ``ok`` is program-wide, so the barrier is safe; it keeps ptxas from merging
    both paths into one predicated stream that runs the general checks."""
    r = em.tmp(hint)
    em.emit(f"if {ok}:")
    with em.indented():
        em.emit(f"{r} = {fast()}")
    else_at = len(em.lines)
    em.emit("else:")
    with em.indented():
        em.emit("tl.debug_barrier()")
        em.emit(f"{r} = {general()}")
    return r, else_at


def _own_scale(em: Emitter, call):
    """The ``scale`` call behind ``round(x, s)``'s s when it is this kernel's dynamic
    ``scale(x)`` of the same x and granularity; else None."""
    c = em.producer.get(call.operands["s"])
    if c is None or c.stage != "scale" or c.operands.get("static") is not None or \
            c.operands["x"] is not call.operands["x"] or \
            c.options["granularity"] != call.options["granularity"]:
        return None
    return c


def _own_mx_amax(em: Emitter, call, lead) -> Optional[str]:
    """The group amax register behind ``round(x, s, mx)``'s s when s is this kernel's
    ``scale(x, mx)`` of the same x (so a NaN or inf x has a NaN or inf group amax, and its
    byte is out of the fast range); else None."""
    c = _own_scale(em, call)
    return None if c is None else em.memo.get(("mx_amax", id(c), lead.key))


def _general_quotient(em: Emitter, call, x: str, s: str, may_zero: bool) -> str:
    """``x / s`` (``recip=div``, correctly rounded) or ``x * RN(1/s)``, and 0 where s == 0
    when the scale may be zero (a zero scale gives code 0)."""
    if call.options["recip"] == Recip.DIV:
        v = em.let("v", f"{em.helper('qf_div_codes')}({x}, {s})")
    else:
        v = em.let("v", f"{x} * {em.helper('qf_div')}(1.0, {s})")
    if may_zero:
        v = em.let("v", f"tl.where({s} == 0.0, 0.0, {v})")
    return v


def _prepare(em: Emitter, v: str, o: dict) -> str:
    """A general quotient made fit for the bounded conversion of ``codes``."""
    if o["dtype"].is_fp8:
        return f"{em.helper('qf_fp8_prepare')}({v})"
    lo, hi = o["dtype"].int_bounds(o["dtype_max"], o["sat"])
    return f"{em.helper('qf_int_prepare')}({v}, {lo}, {hi})"


def _bounded_by_own_scale(em: Emitter, call) -> bool:
    """Whether ``round(x, s)``'s quotient is bounded by construction: ``s`` is this
    kernel's dynamic ``scale(x)`` of the same value and granularity, or an earlier
    kernel's per-tensor scale of the same input x (``em.ctx.scale_facts``: the kernel
    function's ``qf.scale_of`` argument attribute, which qf-fuse writes), so every |x| is
    at most the amax behind its s and |x / s| <= dtype_max (1 + 2^-24); and that
    dtype_max fits the target's codes: at most the fp8 format max, or the int code range."""
    o = call.options
    x, s = call.operands["x"], call.operands["s"]
    if em.producer.get(s) is None:  # s from an earlier kernel: its scale of the same input x?
        fact = em.ctx.scale_facts.get(s.name) if em.is_memory(s) else None
        if fact is None or not em.is_memory(x) or (x.name, o["granularity"]) != fact[:2]:
            return False
        d = fact[2]
    else:
        c = _own_scale(em, call)
        if c is None or o["granularity"] == Granularity.MX:
            return False
        d = float(c.options["dtype_max"])
    target = o["dtype"]
    if target.is_fp8:
        return d <= target.dtype.max
    if target.is_int:
        lo, hi = target.int_bounds(o["dtype_max"], o["sat"])
        return d <= min(hi, -lo)
    return False


def _scale_may_be_zero(em: Emitter, s) -> bool:
    """False when ``s`` comes from a ``scale`` stage whose zero policy excludes 0
    (``one``: an all-zero group gets scale 1; ``floor`` with amax_floor > 0); a static or
    ``zero``-policy scale may be 0, and the codes are then 0."""
    c = em.producer.get(s)
    if c is None or c.stage != "scale" or c.operands.get("static") is not None:
        return True
    zero = c.options.get("zero")
    return not (zero == ZeroPolicy.ONE or
                (zero == ZeroPolicy.FLOOR and c.options.get("amax_floor", 0) > 0))


def _need_natural(em: Emitter, call, cols: Cols) -> None:
    if cols.block is None:
        raise em.unsupported(call, f"{call.options['granularity']} groups are evaluated at "
                                   "natural columns only")


def r_scale(em: Emitter, call, which, lead, cols) -> Reg:
    o = call.options
    gran = o["granularity"]
    x, static = call.operands["x"], call.operands.get("static")
    if static is not None:
        em.stage_comment(call, ": static scale, passed through")
        return em.value_at(static, em.make_lead((), None), ROW)
    if gran == Granularity.PER_TENSOR:
        raise em.unsupported(call, "a dynamic per_tensor scale needs the tensor_amax space "
                                   "(its own kernel)")
    if gran == Granularity.PER_TOKEN:
        def make():
            width = x.type.shape[-1]
            xc = em.natural(em.base_block(width), width)
            xv = em.f32(em.value_at(x, lead, xc))
            em.stage_comment(call, ": amax over the row")
            amax = em.let("amax", f"{em.lib('qft_amax')}({xv}, {xc.mask}, 1)")
            return Reg(scale_from_amax(em, call, amax), "f32")
        return em.memo_get(("scale", id(call), lead.key), make)
    if gran == Granularity.PER_128X128:
        if em.space != "tile":
            raise em.unsupported(call, "per_128x128 needs the tile space")
        xv = em.f32(em.value_at(x, lead, em.tile_cols))
        em.stage_comment(call, ": amax over the 128x128 tile")
        mask = em.and_mask(lead.mask, em.tile_cols.mask)
        amax = em.let("amax", f"{em.lib('qft_amax_bits_all')}({xv}, {mask})"
                              ".to(tl.float32, bitcast=True)")
        return Reg(scale_from_amax(em, call, amax), "f32")
    _need_natural(em, call, cols)
    k = gran.group_size
    xb = cols.block.times(k)
    xc = em.natural(xb, x.type.shape[-1])
    xv = em.f32(em.value_at(x, lead, xc))
    em.stage_comment(call, f": amax over groups of {k}")
    amax = em.let("amax", f"{em.lib('qft_group_amax')}({xv}, {xc.mask}, {em.ctx.block_rows}, "
                          f"{xb.text}, {k})")
    if gran == Granularity.MX:
        em.memo[("mx_amax", id(call), lead.key)] = amax      # for round's E2M1 fast path
        max_pos, emax = o["dtype"].e8m0
        b = (f"{em.helper('qf_e8m0_bytes')}({amax}, {E8M0_MODE_CODES[o['e8m0']]}, {max_pos}, "
             f"{emax})")
        return Reg(em.let("e8m0", b), "u8")
    return Reg(scale_from_amax(em, call, amax), "f32")


def r_round(em: Emitter, call, which, lead, cols) -> Reg:
    o = call.options
    gran = o["granularity"]
    x, s = call.operands["x"], call.operands["s"]
    if gran == Granularity.PER_TENSOR:
        sv = em.value_at(s, em.make_lead((), None), ROW)
    elif gran == Granularity.PER_TOKEN:
        sv = em.value_at(s, lead, ROW)
    elif gran == Granularity.PER_128X128:
        if em.space != "tile":
            raise em.unsupported(call, "per_128x128 needs the tile space")
        sv = (em.value_at(s, lead, cols) if not em.is_memory(s)
              else em.element(s, em.tile_ids, None))
    else:
        _need_natural(em, call, cols)
        k = gran.group_size
        sc = em.natural(cols.block.times(f"1/{k}"), s.type.shape[-1])
        sv = em.value_at(s, lead, sc)
        xv = em.f32(em.value_at(x, lead, cols))
        em.stage_comment(call, f": groups of {k}")
        g = em.lib("qft_to_groups")
        x3 = em.let("x3", f"{g}({xv}, {em.ctx.block_rows}, {cols.block.text}, {k})")
        mx = gran == Granularity.MX
        amax = _own_mx_amax(em, call, lead) if mx else None
        q3 = _quantise(em, call, x3, f"{sv.var}[:, :, None]", mx, mx_amax=amax)
        return Reg(em.let(call.results[0].name, f"tl.reshape({q3.var}, "
                          f"({em.ctx.block_rows}, {cols.block.text}))"), q3.kind)
    xv = em.f32(em.value_at(x, lead, cols))
    em.stage_comment(call)
    return _quantise(em, call, xv, sv.var, False, call.results[0].name)


def r_pack(em: Emitter, call, which, lead, cols) -> Reg:
    if cols.block is None:
        raise em.unsupported(call, "pack is evaluated at natural columns only")
    q = call.operands["x"]
    qb = cols.block.times(2)
    qv = em.value_at(q, lead, em.natural(qb, q.type.shape[-1]))
    em.stage_comment(call, ": byte[j] = nib(q[2j]) | nib(q[2j+1]) << 4")
    full = f"tl.broadcast_to({qv.var}, ({em.ctx.block_rows}, {qb.text}))"
    if call.options["order"] == PackOrder.EVEN_ODD:
        em.stage_comment(call, ": each word of 8 codes as q0 q2 q4 q6 q1 q3 q5 q7")
        full = em.let("words", f"{em.helper('qf_even_odd')}({full}, {em.ctx.block_rows}, "
                               f"{qb.text})")
    # codes this kernel rounded to E2M1 are 0..15; int4 ones are signed, and codes read
    # from memory are whatever the caller stored: those keep their low nibble only
    mask = q.type.dtype.name != QuantTarget.FP4_E2M1 or em.is_memory(q)
    return Reg(em.let(call.results[0].name, f"{em.helper('qf_pack_nibbles')}({full}, "
                                            f"{em.ctx.block_rows}, {qb.text}, {mask})"), "u8")


def s_scale(em: Emitter, call, v) -> None:
    """A scale output: per_tensor (one value) by one program, per_token one value per row,
    per_128x128 each tile program its own entry; group scales at their natural columns."""
    gran = call.options["granularity"]
    lead = em.domain_lead
    if gran == Granularity.PER_TENSOR:
        scalar_store(em, v, em.value_at(v, em.make_lead((), None), ROW))
    elif gran == Granularity.PER_TOKEN:
        store_at(em, v, lead, ROW, em.value_at(v, lead, ROW))
    elif gran == Granularity.PER_128X128:
        reg = em.value_at(v, lead, em.tile_cols)
        pm, pn = em.tile_ids
        name = em.out_names[v]
        em.emit(f"tl.store({name}_ptr + {pm} * {name}_s0 + {pn}, "
                f"{storage_value(em, reg, 'f32')})")
    else:
        store_plain(em, v)


def _scale_block(em: Emitter, call):
    """A group scale sits at 1/K of its input's block; other scales at their own width."""
    k = call.options["granularity"].group_size
    if k is None:
        return None
    return em.note_block(em.nat_block(call.operands["x"]).times(Fraction(1, k)))


def _scale_rows(call, v):
    """A per_tensor scale is one value, stored once; any other covers the rows of x."""
    if call.options["granularity"] == Granularity.PER_TENSOR:
        return None
    return tuple(call.operands["x"].type.shape[:-1])


def _decode(em: Emitter, q: Reg, codes: QuantTarget) -> str:
    """The fp32 value of a code register (docs/semantics.md, ``dequant``)."""
    if codes.is_fp8:
        fnuz = codes == QuantTarget.FP8_E4M3FNUZ
        return em.let("dq", f"{em.helper('qf_fp8_value')}({q.var}, {fnuz})")
    if codes == QuantTarget.I8:
        return em.let("dq", f"{q.var}.to(tl.float32)")
    fn = "qf_int4_value" if codes == QuantTarget.INT4 else "qf_e2m1_value"
    return em.let("dq", f"{em.helper(fn)}({q.var})")


def r_dequant(em: Emitter, call, which, lead, cols) -> Reg:
    """``decode(q) * s`` (s broadcast by the granularity; mx: 2^(b-127)), one fp32
    multiply, then RNE to the result dtype."""
    o = call.options
    q, s = call.operands["q"], call.operands.get("s")
    gran = o["granularity"]
    name = call.results[0].name
    em.stage_comment(call)
    if s is not None and gran.group_size:
        _need_natural(em, call, cols)
        k = gran.group_size
        sv = em.value_at(s, lead, em.natural(cols.block.times(f"1/{k}"), s.type.shape[-1]))
        v = _decode(em, em.value_at(q, lead, cols), o["codes"])
        g = em.lib("qft_to_groups")
        v3 = em.let("dq3", f"{g}({v}, {em.ctx.block_rows}, {cols.block.text}, {k})")
        f = sv.var if gran != Granularity.MX else \
            em.let("sf", f"{em.helper('qf_e8m0_scale')}({sv.var})")
        y = em.let(name, f"tl.reshape({v3} * {f}[:, :, None], "
                         f"({em.ctx.block_rows}, {cols.block.text}))")
    else:
        v = _decode(em, em.value_at(q, lead, cols), o["codes"])
        if s is None:
            y = v
        else:
            at = em.make_lead((), None) if gran == Granularity.PER_TENSOR else lead
            y = em.let(name, f"{v} * {em.value_at(s, at, ROW).var}")
    return Reg(round_float(em, y, o["dtype"], name), "f32")


def r_unpack(em: Emitter, call, which, lead, cols) -> Reg:
    """Codes from the bytes at half the columns: code 2j from the low nibble of byte j."""
    if cols.block is None:
        raise em.unsupported(call, "unpack is evaluated at natural columns only")
    x = call.operands["x"]
    order = call.options["order"]
    if order.word > 1:                  # whole words of 8 codes in a program's block
        em.note_block(cols.block.times(Fraction(1, order.word)))
    xb = cols.block.times(Fraction(1, 2))
    xv = em.value_at(x, lead, em.natural(xb, x.type.shape[-1]))
    em.stage_comment(call, ": q[2j] = byte[j] & 0xF, q[2j+1] = byte[j] >> 4")
    signed = call.options["dtype"] == QuantTarget.INT4
    full = f"tl.broadcast_to({xv.var}, ({em.ctx.block_rows}, {xb.text}))"
    q = em.let(call.results[0].name, f"{em.helper('qf_unpack_nibbles')}({full}, "
                                     f"{em.ctx.block_rows}, {xb.text}, {signed}, "
                                     f"{order.word > 1})")
    return Reg(q, "i8" if signed else "u8")


def _pack_block(em: Emitter, call):
    """Packed bytes sit at half their codes' block; even_odd needs whole words of 8 codes
    in a program's block (its base at least 8: noted through a 1/8 block)."""
    base = em.nat_block(call.operands["x"])
    if call.options["order"].word > 1:
        em.note_block(base.times(Fraction(1, call.options["order"].word)))
    return em.note_block(base.times(Fraction(1, 2)))


RENDER.update({"scale": r_scale, "round": r_round, "pack": r_pack, "dequant": r_dequant,
               "unpack": r_unpack})
STORE["scale"] = s_scale
NAT_BLOCK.update({"scale": _scale_block, "pack": _pack_block})
OUT_ROWS["scale"] = _scale_rows
COMMENT_OPTIONS.update({
    # a scale shows the option that applies to its granularity: e8m0 for mx, else zero
    "scale": lambda o: ("dtype", "granularity") + (
        ("e8m0",) if o["granularity"] == Granularity.MX else ("zero",)),
    "round": ("dtype", "granularity", "mode", "recip"),
    "dequant": ("codes", "granularity", "dtype"), "unpack": ("dtype", "order"),
    # pack shows its order when it permutes (the default keeps earlier kernels' text)
    "pack": lambda o: ("order",) if o["order"] != PackOrder.LINEAR else ()})
