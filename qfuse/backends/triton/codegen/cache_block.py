"""``cache_write(quant=per_block)``: the ``cache_block`` space, three kernels in one module.

A block's scale needs the amax over *all* of its new tokens before any token is written,
and growing the scale re-quantises the codes already in the block. So (docs/semantics.md):

1. ``<k>_amax`` (rows = (t, h)): each row that won its slot atomically maxes its |x| bits
   into ``ws[blk * H + h]`` and ``BS - off`` into ``ws[NB * H + blk]`` (so the block's first
   written offset is ``BS - max``; 0 means untouched);
2. ``<k>_scale`` (one program per (blk, h)): ``new = max(1e-6, amax) / dtype_max``
   (``KV_BLOCK_AMAX_FLOOR``); with
   ``first > 0`` and ``old < new`` the entries ``[0, first)`` become
   ``round(f32(q_old) * (old / new))`` and the scale ``new``; ``old >= new`` (or NaN) keeps
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

from ....dialect.options import KV_BLOCK_AMAX_FLOOR, CacheLayout, QuantTarget, ScaleLayout
from ....dialect.stages import call_space
from ....dialect.types import dtype as qdtype
from ....dialect.typed import TypedPipeline
from ..kernel import KernelSource, dim_rule
from .assemble import assemble
from .emit import EmitContext, Emitter, _ident, dim_expr, f32_literal, unsupported
from .slot_claims import (claim_constexprs, claim_grid, claim_regions, emit_claim_phase,
                          finish_claims)
from .stages_cache import block_size, cache_offset, slot_prologue
from .stages_quant import codes
from .stores import storage_value

__all__ = ["render_cache_block"]

# the device library's code kind (lib.qft_code_to_f32) of each quantised cache dtype
_KIND = {QuantTarget.FP8_E4M3FN: 0, QuantTarget.FP8_E4M3FNUZ: 1, QuantTarget.I8: 2}


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
                      constexprs=(("BLOCK_BS", f"np2({_bs_rule(call)})"),)
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
    em.comment("the block's amax per head, and its first written offset (as BS - off)")
    bits = em.let("amax_bits", f"{em.lib('qft_amax_bits')}({xv}, {cols.mask}, 1)")
    em.emit(f"tl.atomic_max(ws_ptr + {blk} * {heads} + {h}, {bits}, mask={ok})")
    em.emit(f"tl.atomic_max(ws_ptr + {nb} * {heads} + {blk}, "
            f"({block_size(call, em.dim)} - {off}).to(tl.int32), mask={ok})")


def _phase_scale(em: Emitter, call, dmax: float, cdt: str) -> None:
    o = call.options
    x, cache = call.operands["x"], call.operands["cache"]
    heads, nb = em.dim(x.type.shape[1]), em.dim(cache.type.shape[0])
    bs, d = block_size(call, em.dim), em.dim(x.type.shape[2])
    div = em.helper("qf_div")
    em.comment(f"cache_write(per_block) @ {em.where_(call)}: one program per (block, head)")
    em.emit("pid = tl.program_id(0)")
    blk = em.let("blk", f"(pid // {heads}).to(tl.int64)")
    h = em.let("head", f"(pid % {heads}).to(tl.int64)")
    amax = em.let("amax", "tl.load(ws_ptr + pid).to(tl.float32, bitcast=True)")
    fw = em.let("first_w", f"tl.load(ws_ptr + {nb} * {heads} + {blk})")
    touched = em.let("touched", f"{fw} > 0")
    first = em.let("first", f"{bs} - {fw}")
    lo = f32_literal(KV_BLOCK_AMAX_FLOOR)
    new = em.let("new", f"{div}(tl.where({amax} < {lo}, {lo}, {amax}), {f32_literal(dmax)})")
    saddr = _scale_addr(em, call, blk, h)
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
    out = call.results[0]
    addr = f"{em.out_names[out]}_ptr + " + cache_offset(em, call, out, blk, h, offs, dcol)
    q_old = em.let("q_old", f"tl.load({addr}, mask={m}, other=0)")
    ratio = em.let("ratio", f"{div}({old}, {new})")
    v = em.let("v", f"{em.lib('qft_code_to_f32')}({q_old}, {_KIND[cdt]}) * {ratio}")
    q = codes(em, v, cdt, dmax, o["mode"], True)
    em.emit(f"tl.store({addr}, {storage_value(em, q, cdt)}, mask={m})")


def _phase_write(em: Emitter, call, dmax: float, cdt: str) -> None:
    x = call.operands["x"]
    lead, cols, slot, ok, blk, off = slot_prologue(em, call)
    h = lead.names[1]
    heads = em.dim(x.type.shape[1])
    nb = em.dim(call.operands["cache"].type.shape[0])
    em.comment("phase 2 has read this block's words: zero them for the next call (every word "
               "phase 1 set belongs to a written row)")
    em.emit(f"tl.store(ws_ptr + {blk} * {heads} + {h}, 0, mask={ok})")
    em.emit(f"tl.store(ws_ptr + {nb} * {heads} + {blk}, 0, mask={ok})")
    xv = em.f32(em.value_at(x, lead, cols))
    sc = em.let("scale", f"tl.load({_scale_addr(em, call, blk, h)}, mask={ok}, other=1.0)")
    inv = em.let("inv", f"{em.helper('qf_div')}(1.0, {sc})")
    q = codes(em, em.let("v", f"{xv} * {inv}"), cdt, dmax, call.options["mode"], True)
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
    pairs = f"{dim_rule(nb)} * {dim_rule(heads)}"
    # the claim words follow phase 1's amax and first-offset words
    block_words = (f"{dim_expr(nb)} * ({dim_expr(heads)} + 1)",
                   f"{dim_rule(nb)} * ({dim_rule(heads)} + 1)")
    regions, ws = claim_regions([call], block_words)
    e0, e1, e2, e3 = (_new_emitter(tp, call, r, c) for r, c in
                      ((False, regions), (True, regions), (False, {}), (True, regions)))
    emit_claim_phase(e0, list(regions.values()), e0.dim(x.type.shape[0]))
    _phase_amax(e1, call)
    _phase_scale(e2, call, dmax, cdt)
    _phase_write(e3, call, dmax, cdt)
    finish_claims(e3, list(regions.values()))
    if call.options["layout"] in (CacheLayout.KEY, CacheLayout.VALUE_ASM):
        e1.check(f"{dim_rule(call.operands['cache'].type.shape[4])} == {call.options['vec']}",
                 f"{call.operands['cache'].name}: the {call.options['layout']} layout's last "
                 f"dim must be x={call.options['vec']}")
    phases = [(f"{name}_claim", e0, claim_grid(x.type.shape[0])), (f"{name}_amax", e1, (rows,)),
              (f"{name}_scale", e2, (pairs,)), (f"{name}_write", e3, (rows,))]
    return assemble(tp, "cache_block", phases, primary=1, workspace=ws)
