"""``cache_write(quant=per_block)``: the ``cache_block`` space, three kernels in one module.

A block's scale needs the amax over *all* of its new tokens before any token is written,
and growing the scale re-quantises the codes already in the block. So (docs/semantics.md):

1. ``<k>_amax`` (rows = (t, h)): each row that won its slot atomically maxes its |x| bits
   into ``ws[blk * H + h]`` and ``BS - off`` into ``ws[NB * H + blk]`` (so the block's first
   written offset is ``BS - max``; 0 means untouched);
2. ``<k>_scale`` (one program per (blk, h)): ``new = max(1e-6, amax) / dtype_max``
   (``KV_BLOCK_AMAX_FLOOR``); with
   ``first > 0`` and ``old < new`` the entries ``[0, first)`` become
   ``round((f32(q_old) * old) / new)`` and the scale ``new``; ``old >= new`` (or NaN) keeps
   ``old``; ``first == 0`` takes ``new``. Touched scales are stored;
3. ``<k>_write`` (rows): ``q = round(x * (1 / scale[blk, h]))`` at the layout address.

Before them, ``<k>_claim`` decides which token wins a slot given twice (the later one,
``slot_claims.py``); phases 1 and 3 take only winners, so an overwritten token counts in
no amax. Phase 3 zeroes the words phase 1 set, so the workspace is clean for the next
call without a memset. The producers of x (norm, rope, casts, ...) are recomputed in
kernels 1 and 3 (reading x twice is cheaper than a round trip through memory). The
re-quantised region of a block is one tile of ``next_pow2(BS) x next_pow2(D)``.
"""
from __future__ import annotations

from typing import Optional

from ....dialect.options import (KV_BLOCK_AMAX_FLOOR, BlockRequant, CacheFloor,
                                  QuantTarget, ScaleLayout)
from ....dialect.stages import call_space
from ....dialect.types import dtype as qdtype
from ....dialect.typed import TypedPipeline
from ..kernel import KernelSource, dim_rule
from .assemble import assemble
from .emit import EmitContext, Emitter, _ident, dim_expr, f32_literal, unsupported
from .slot_claims import (claim_constexprs, claim_grid, claim_regions, emit_claim_phase,
                          finish_claims)
from .stages_cache import (block_size, cache_offset, check_vec, quotient, slot_prologue,
                           stored_scale)
from .stages_quant import codes
from .stores import storage_value

__all__ = ["render_cache_block"]

# the device library's code kind (lib.qft_code_to_f32) of each quantised cache dtype
_KIND = {QuantTarget.FP8_E4M3FN: 0, QuantTarget.FP8_E4M3FNUZ: 1, QuantTarget.I8: 2}


def _super(call) -> int:
    """Slots per scale when ``scale_block`` is given (0: one cache block, the plain form)."""
    return int(call.options["scale_block"] or 0)


def _always(call) -> bool:
    return call.options["requant"] == BlockRequant.ALWAYS


def _n_scales(em: Emitter, call) -> str:
    """Scale blocks per head: NB, or NB * BS / scale_block."""
    nb = em.dim(call.operands["cache"].type.shape[0])
    sb = _super(call)
    return f"({nb} * {block_size(call, em.dim)} // {sb})" if sb else nb


def _marks(em: Emitter, call) -> str:
    """requant=always: one int32 word per cache slot after the amax and first-offset words,
    set for the slots this call writes."""
    heads = em.dim(call.operands["x"].type.shape[1])
    return f"ws_ptr + {_n_scales(em, call)} * ({heads} + 1)"


def _scale_block_of(em: Emitter, call, slot: str, off: str) -> tuple:
    """(scale block, offset in it) of a slot: (blk, off) unless scale_block is given."""
    sb = _super(call)
    if not sb:
        return None, off
    return em.let("sblk", f"{slot} // {sb}"), em.let("soff", f"{slot} % {sb}")


def _scale_addr(em: Emitter, call, blk: str, h: str) -> str:
    nm = em.out_names[call.results[1]]
    if call.options["scale_layout"] == ScaleLayout.ASM:   # [NB, H] at [blk, h]
        return f"{nm}_ptr + {blk} * {nm}_s0 + {h}"
    return f"{nm}_ptr + {h} * {nm}_s0 + {blk}"        # [H, NB] at [h, blk]


def _new_emitter(tp, call, rows: bool, claims: dict):
    """A phase's emitter: over the (t, h) rows of x (tokens fastest), or, with ``rows``
    False, with a prologue of its own."""
    x = call.operands["x"]
    ctx = EmitContext("cache_block", rows=tuple(x.type.shape[:2]) if rows else None,
                      first_fastest=True, claims=claims,
                      constexprs=(("BLOCK_BS", f"np2({_super(call) or _bs_rule(call)})"),)
                      + claim_constexprs(x.type.shape[0]))
    em = Emitter(tp, ctx)
    em.base_block(x.type.shape[2])                     # BLOCK_0 = D in every phase
    return em


def _bs_rule(call) -> str:
    return block_size(call, dim_rule)


def _phase_amax(em: Emitter, call) -> None:
    x = call.operands["x"]
    lead, cols, slot, ok, blk, off = slot_prologue(em, call)
    h = lead.names[1]
    heads = em.dim(x.type.shape[1])
    nb = em.dim(call.operands["cache"].type.shape[0])
    xv = em.f32(em.value_at(x, lead, cols))
    sblk, soff = _scale_block_of(em, call, slot, off)
    if sblk is not None:
        blk, nb = sblk, _n_scales(em, call)
    em.comment("the block's amax per head, and its first written offset (as BS - off)")
    bits = em.let("amax_bits", f"{em.lib('qft_amax_bits')}({xv}, {cols.mask}, 1)")
    em.emit(f"tl.atomic_max(ws_ptr + {blk} * {heads} + {h}, {bits}, mask={ok})")
    em.emit(f"tl.atomic_max(ws_ptr + {nb} * {heads} + {blk}, "
            f"({_super(call) or block_size(call, em.dim)} - {soff}).to(tl.int32), mask={ok})")
    if _always(call):
        em.comment("requant=always: mark the slots this call writes")
        em.emit(f"tl.store({_marks(em, call)} + {slot}, 1, mask={ok})")


def _phase_scale(em: Emitter, call, dmax: float, cdt: str) -> None:
    o = call.options
    x, cache = call.operands["x"], call.operands["cache"]
    heads, nb = em.dim(x.type.shape[1]), _n_scales(em, call)
    bs, d = _super(call) or block_size(call, em.dim), em.dim(x.type.shape[2])
    div = em.helper("qf_div")
    em.comment(f"cache_write(per_block) @ {em.where_(call)}: one program per (block, head)")
    em.emit("pid = tl.program_id(0)")
    blk = em.let("blk", f"(pid // {heads}).to(tl.int64)")
    h = em.let("head", f"(pid % {heads}).to(tl.int64)")
    amax = em.let("amax", "tl.load(ws_ptr + pid).to(tl.float32, bitcast=True)")
    fw = em.let("first_w", f"tl.load(ws_ptr + {nb} * {heads} + {blk})")
    touched = em.let("touched", f"{fw} > 0")
    first = em.let("first", f"{bs} - {fw}")
    saddr = _scale_addr(em, call, blk, h)
    if _always(call):
        _requant_always(em, call, dmax, cdt, blk, h, amax, touched, saddr)
        return
    new = _block_scale(em, call, amax, dmax)
    old = em.let("old", f"tl.load({saddr})")
    grow = em.let("grow", f"({first} > 0) & ({old} < {new})")
    scale = em.let("scale", f"tl.where({grow} | ({first} == 0), {new}, {old})")
    em.emit(f"if {touched}:")
    em.emit(f"    tl.store({saddr}, {scale})")
    em.comment("a grown scale re-quantises the entries [0, first) already in the block")
    offs = em.let("offs", "tl.arange(0, BLOCK_BS)[:, None].to(tl.int64)")
    dcol = em.let("dcol", "tl.arange(0, BLOCK_0)[None, :]")
    # (a 0-d bool in a tensor mask breaks the interpreter: fold it into the bound)
    upto = em.let("rq_upto", f"tl.where({touched} & {grow}, {first}, 0)")
    m = em.let("rq_mask", f"({offs} < {upto}) & ({dcol} < {d})")
    addr = _tile_addr(em, call, blk, h, offs, dcol)
    q_old = em.let("q_old", f"tl.load({addr}, mask={m}, other=0)")
    deq = em.let("deq", f"{em.lib('qft_code_to_f32')}({q_old}, {_KIND[cdt]}) * {old}")
    v = em.let("v", f"{div}({deq}, {new})")                    # (q * old) / new, as HIP
    q = codes(em, v, cdt, dmax, o["mode"], True)
    em.emit(f"tl.store({addr}, {storage_value(em, q, cdt)}, mask={m})")


def _block_scale(em: Emitter, call, amax: str, dmax: float) -> str:
    """``max(1e-6, amax) / dtype_max`` (floor=floor) or ``amax / dtype_max``, as stored."""
    div = em.helper("qf_div")
    if call.options["floor"] == CacheFloor.FLOOR:
        lo = f32_literal(KV_BLOCK_AMAX_FLOOR)
        amax = f"tl.where({amax} < {lo}, {lo}, {amax})"
    return stored_scale(em, call.options, em.let("new", f"{div}({amax}, {f32_literal(dmax)})"))


def _tile_addr(em: Emitter, call, blk: str, h: str, offs: str, dcol: str) -> str:
    """The cache address of offsets ``offs`` (a column) of scale block ``blk``, head ``h``,
    columns ``dcol``: in one cache block, or across the blocks of a scale_block."""
    out = call.results[0]
    sb = _super(call)
    if sb:
        slot = em.let("rq_slot", f"{blk} * {sb} + {offs}")
        bs = block_size(call, em.dim)
        cb, co = em.let("rq_blk", f"{slot} // {bs}"), em.let("rq_off", f"{slot} % {bs}")
        return f"{em.out_names[out]}_ptr + " + cache_offset(em, call, out, cb, h, co, dcol)
    return f"{em.out_names[out]}_ptr + " + cache_offset(em, call, out, blk, h, offs, dcol)


def _requant_always(em: Emitter, call, dmax: float, cdt: str, blk: str, h: str, amax: str,
                    touched: str, saddr: str) -> None:
    """requant=always (AITER's torch reference): ``v = f32(q) * old`` over the block's
    entries this call does not overwrite, ``s`` from ``max(amax(v), new tokens' amax)``,
    each such entry ``round(v / s)`` (the new tokens follow in phase 3)."""
    bs, d = _super(call) or block_size(call, em.dim), em.dim(call.operands["x"].type.shape[2])
    old = em.let("old", f"tl.load({saddr})")
    em.comment("the whole block is dequantised and quantised again with the new scale")
    offs = em.let("offs", "tl.arange(0, BLOCK_BS)[:, None].to(tl.int64)")
    dcol = em.let("dcol", "tl.arange(0, BLOCK_0)[None, :]")
    upto = em.let("rq_upto", f"tl.where({touched}, {bs}, 0)")
    written = em.let("written", f"tl.load({_marks(em, call)} + {blk} * {bs} + {offs}, "
                                f"mask={offs} < {upto}, other=0) != 0")
    m = em.let("rq_mask", f"({offs} < {upto}) & ({dcol} < {d}) & (~{written})")
    addr = _tile_addr(em, call, blk, h, offs, dcol)
    q_old = em.let("q_old", f"tl.load({addr}, mask={m}, other=0)")
    v = em.let("v_old", f"{em.lib('qft_code_to_f32')}({q_old}, {_KIND[cdt]}) * {old}")
    a_old = em.let("amax_old", f"tl.max(tl.max(tl.where({m}, tl.abs({v}), 0.0), 1), 0)")
    scale = _block_scale(em, call, em.let("amax_all", f"tl.maximum({amax}, {a_old})"), dmax)
    em.emit(f"if {touched}:")
    em.emit(f"    tl.store({saddr}, {scale})")
    qs = em.let("qs", f"tl.where({scale} == 0.0, 1.0, {scale})")
    q = codes(em, quotient(em, call.options, v, qs), cdt, dmax, call.options["mode"], True)
    em.emit(f"tl.store({addr}, {storage_value(em, q, cdt)}, mask={m})")


def _phase_write(em: Emitter, call, dmax: float, cdt: str) -> None:
    x = call.operands["x"]
    lead, cols, slot, ok, blk, off = slot_prologue(em, call)
    h = lead.names[1]
    heads = em.dim(x.type.shape[1])
    nb = em.dim(call.operands["cache"].type.shape[0])
    sblk, _ = _scale_block_of(em, call, slot, off)
    sblk, nb = (blk, nb) if sblk is None else (sblk, _n_scales(em, call))
    em.comment("phase 2 has read this block's words: zero them for the next call (every word "
               "phase 1 set belongs to a written row)")
    em.emit(f"tl.store(ws_ptr + {sblk} * {heads} + {h}, 0, mask={ok})")
    em.emit(f"tl.store(ws_ptr + {nb} * {heads} + {sblk}, 0, mask={ok})")
    if _always(call):
        em.emit(f"tl.store({_marks(em, call)} + {slot}, 0, mask={ok})")
    xv = em.f32(em.value_at(x, lead, cols))
    sc = em.let("scale", f"tl.load({_scale_addr(em, call, sblk, h)}, mask={ok}, other=1.0)")
    if call.options["floor"] == CacheFloor.NONE or _always(call):
        sc = em.let("qs", f"tl.where({sc} == 0.0, 1.0, {sc})")      # a zero block: codes 0
    v = quotient(em, call.options, xv, sc)
    q = codes(em, v, cdt, dmax, call.options["mode"], True)
    out = call.results[0]
    addr = cache_offset(em, call, out, blk, h, off, cols.var)
    em.emit(f"tl.store({em.out_names[out]}_ptr + {addr}, {storage_value(em, q, cdt)}, "
            f"mask={ok} & {cols.mask})")


def render_cache_block(tp: TypedPipeline, facts: Optional[dict] = None) -> KernelSource:
    """The four phases of ``tp`` (ending in ``cache_write(quant=per_block)``) in one module;
    ``facts`` (earlier kernels' scales) do not apply here."""
    call = tp.calls[-1]
    if call_space(call) != "cache_block":
        raise unsupported(None, "a cache_block kernel ends in cache_write(quant=per_block)")
    if len(call.results) < 2 or list(tp.returns) != list(call.results):
        raise unsupported(call, "a per_block cache write returns the cache and its scales")
    cdt = call.operands["cache"].type.dtype.name
    dmax = call.options["dtype_max"] or qdtype(cdt).max
    name = _ident(tp.name)
    x = call.operands["x"]
    nb, heads = call.operands["cache"].type.shape[0], x.type.shape[1]
    rows = f"cdiv({dim_rule(x.type.shape[0])} * {dim_rule(heads)}, BLOCK_M)"
    nsb_e, nsb_r = dim_expr(nb), dim_rule(nb)
    if _super(call):
        nsb_e = f"({nsb_e} * {block_size(call, dim_expr)} // {_super(call)})"
        nsb_r = f"({nsb_r} * {_bs_rule(call)} // {_super(call)})"
    pairs = f"{nsb_r} * {dim_rule(heads)}"
    # the claim words follow phase 1's amax and first-offset words (and the slot marks)
    block_words = (f"{nsb_e} * ({dim_expr(heads)} + 1)", f"{nsb_r} * ({dim_rule(heads)} + 1)")
    if _always(call):
        block_words = tuple(f"{w} + {n} * {b}" for w, n, b in zip(
            block_words, (dim_expr(nb), dim_rule(nb)),
            (block_size(call, dim_expr), _bs_rule(call))))
    regions, ws = claim_regions([call], block_words)
    e0, e1, e2, e3 = (_new_emitter(tp, call, r, c) for r, c in
                      ((False, regions), (True, regions), (False, {}), (True, regions)))
    emit_claim_phase(e0, list(regions.values()), e0.dim(x.type.shape[0]))
    _phase_amax(e1, call)
    _phase_scale(e2, call, dmax, cdt)
    _phase_write(e3, call, dmax, cdt)
    finish_claims(e3, list(regions.values()))
    check_vec(e1, call)
    phases = [(f"{name}_claim", e0, claim_grid(x.type.shape[0])), (f"{name}_amax", e1, (rows,)),
              (f"{name}_scale", e2, (pairs,)), (f"{name}_write", e3, (rows,))]
    return assemble(tp, "cache_block", phases, primary=1, workspace=ws)
