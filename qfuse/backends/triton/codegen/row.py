"""The ``row`` space: rows = the outputs' leading dims flattened.

A program owns BLOCK_M rows and whole rows in registers (``BLOCK_<k> = max(next_pow2(width),
smallest group)``). A kernel without a row-wide reduction may also split its columns over
a second grid axis (:func:`column_split_ok`; ``TritonConfig.col_chunks``). A kernel with
cache writes is two launches: the slot claims (slot_claims.py), then the kernel.
"""
from __future__ import annotations

from ....dialect.stages import STAGES
from ....dialect.typed import TypedPipeline
from ....errors import UnsupportedError
from ..kernel import KernelSource, dim_rule
from .assemble import assemble, scatters, single
from .emit import OUT_ROWS, EmitContext, Emitter, _ident
from .slot_claims import (claim_constexprs, claim_grid, claim_regions, emit_claim_phase,
                          finish_claims)
from .stores import store_outputs

__all__ = ["render_row", "column_split_ok"]


def render_row(kernel: TypedPipeline, facts: dict) -> KernelSource:
    split = column_split_ok(kernel)
    em, grid = _body(kernel, split, facts)
    if split and len(em.bases) != 1:     # columns of several widths: whole rows
        split = False
        em, grid = _body(kernel, split, facts)
    col_split = 0
    if split:
        col_split = em.base_min["BLOCK_0"]
        grid = grid + (f"cdiv({dim_rule(em.base_dim['BLOCK_0'])}, BLOCK_0)",)
    if em.ctx.claims:                # cache writes: their slot claims launch first
        return _with_claims(em, kernel, grid, col_split)
    return assemble(kernel, "row", single(em, grid), col_split=col_split)


def _body(kernel: TypedPipeline, split: bool, facts: dict) -> tuple:
    """The kernel's emitter, every output stored, and its grid."""
    dom = _domain(kernel)
    writes = scatters(kernel)
    claims, _ = claim_regions(writes)
    modes = claim_constexprs(writes[0].operands["x"].type.shape[0]) if writes else ()
    em = Emitter(kernel, EmitContext("row", rows=dom, first_fastest=bool(writes),
                                     col_split=split, scale_facts=facts, claims=claims,
                                     constexprs=modes))
    store_outputs(em, kernel.returns)
    finish_claims(em, list(claims.values()))
    rows = " * ".join(dim_rule(d) for d in dom) or "1"
    return em, (f"cdiv({rows}, BLOCK_M)",)


def _domain(tp: TypedPipeline) -> tuple:
    """The rows every output iterates over (one domain per kernel, or an error): a value's
    own leading dims, or those its stage's lowering stores it over (``OUT_ROWS``); with
    only values stored once, the rows their stage reads (its catalog ``rows`` tensor)."""
    producer = {r: c for c in tp.calls for r in c.results}
    doms, once = [], []
    for v in tp.returns:
        call = producer.get(v)
        rule = OUT_ROWS.get(call.stage) if call is not None else None
        d = rule(call, v) if rule is not None else tuple(v.type.shape[:-1])
        if d is None:
            once.append(call)
        elif tuple(d) not in doms:
            doms.append(tuple(d))
    if not doms:
        call = once[0]
        doms.append(tuple(call.operands[STAGES[call.stage].rows].type.shape[:-1]))
    if len(doms) > 1:
        raise UnsupportedError(
            f"triton backend: the outputs of kernel {tp.name} iterate over different rows "
            f"({' vs '.join('[' + ', '.join(map(str, d)) + ']' for d in doms)}); the fusion "
            "pass must split them", tp.loc)
    return doms[0]


def _with_claims(em: Emitter, kernel: TypedPipeline, grid: tuple, col_split: int):
    """A row kernel with cache writes as two launches: the slot claims, then the kernel."""
    calls = scatters(kernel)
    regions, ws = claim_regions(calls)
    tokens = calls[0].operands["x"].type.shape[0]
    claim = Emitter(kernel, EmitContext("row", claims=regions,
                                        constexprs=claim_constexprs(tokens)))
    emit_claim_phase(claim, list(regions.values()), claim.dim(tokens))
    name = _ident(kernel.name)
    phases = [(f"{name}_claim", claim, claim_grid(tokens)), (name, em, grid)]
    return assemble(kernel, "row", phases, primary=1, workspace=ws, col_split=col_split)


def column_split_ok(tp: TypedPipeline) -> bool:
    """Whether a row-space kernel may split its columns across programs: no stage needs
    whole rows (the catalog's ``Stage.whole_rows``: norm statistics, a per-token scale, a
    KV-cache row with its scale). Group scales (per_1xK, mx) reduce within groups, which a
    split keeps whole (a chunk is at least the group size); every other stage addresses
    columns arithmetically."""
    return not any(STAGES[c.stage].whole_rows(c.options, c.operands) for c in tp.calls)
