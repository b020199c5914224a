"""Slot claims: the later token wins a KV-cache slot given twice, on a parallel GPU.

The semantics (docs/semantics.md, the reference's ``run_cache_write``): a token is written
iff ``0 <= slot < NB * BS`` and no later token of the call has the same slot; only written
tokens count anywhere (their per-token scales, a block's amax). Programs of one launch run
in any order, so the winner of each slot is decided by a launch of its own before the
write (the ``claim`` phase), in a workspace of one int64 word per cache slot:

1. ``claim`` (programs over tokens): ``gen = words[cap] + 1``; every token with a slot in
   range does ``atomic_max(words[slot], gen << 24 | t)``; program 0 stores ``gen`` at
   ``words[cap + 1]``.
2. the phases that write (or count) a token read ``gen = words[cap + 1]`` and take the
   token iff ``words[slot] == gen << 24 | t``; program 0 of the last of them stores ``gen``
   back at ``words[cap]`` for the next call.

The words are never cleared: a tag of an earlier call has a smaller generation, so it
loses every max and matches no token of this call. The workspace is zeroed once when
allocated (``workspace.py`` keeps one per stream and one per captured CUDA graph, whose
replays then advance the generation on the device). No phase reads the word another
program of the same launch writes. The generation has 39 bits: ``5e11`` calls per
workspace before it would wrap (a 24-bit token index: ``T < 2**24``, checked at bind).
"""
from __future__ import annotations

from dataclasses import dataclass

from ....dialect.requirements import cache_capacity
from ..kernel import dim_rule
from .emit import Emitter, dim_expr

__all__ = ["ClaimRegion", "claim_regions", "emit_claim_phase", "claimed", "finish_claims",
           "TOKEN_BITS", "SCAN_TOKENS", "claim_constexprs", "claim_grid"]

TOKEN_BITS = 24
# up to this many tokens a call decides the winners without the claim launch: each row
# scans the call's slots (at decode sizes a launch costs more than the scan: the KV write
# at 16 tokens took 3.9 us with the claim launch and 2.4 us without, on an H100)
SCAN_TOKENS = 256
SCAN_BLOCK = 128


def claim_constexprs(tokens) -> tuple:
    """The constexpr that picks the mode: ``CLAIMS`` = 1 above SCAN_TOKENS tokens."""
    return (("CLAIMS", f"1 * ({dim_rule(tokens)} > {SCAN_TOKENS})"),)


def claim_grid(tokens) -> tuple:
    """The claim launch's grid rule: empty (not launched) when the call scans."""
    return (f"cdiv({dim_rule(tokens)}, BLOCK_M) * ({dim_rule(tokens)} > {SCAN_TOKENS})",)


@dataclass(frozen=True)
class ClaimRegion:
    """The claim words of one ``cache_write`` call: ``cap + 2`` int64 words at int64 offset
    ``base`` of the workspace (both as kernel expressions over ``dim_<sym>``)."""
    call: object
    base: str
    cap: str


def claim_regions(calls: list, first_word: tuple = ("0", "0")) -> tuple:
    """``({id(call): ClaimRegion}, workspace rule in int32 words)`` for the cache writes
    ``calls`` (an EmitContext's ``claims``); ``first_word``: (kernel expression, rule) of
    the first free int32 word (words before it belong to the kernel's other workspace).
    The expressions read only the caches' dims, which are kernel arguments anyway."""
    expr0, rule0 = first_word
    base_e, base_r = f"(({expr0}) + 1) // 2", f"(({rule0}) + 1) // 2"    # int64 aligned
    regions = {}
    for call in calls:
        cap = cache_capacity(call.operands["cache"].type, call.options["layout"])
        regions[id(call)] = ClaimRegion(call, base_e, dim_expr(cap))
        base_e = f"{base_e} + {dim_expr(cap)} + 2"
        base_r = f"{base_r} + {dim_rule(cap)} + 2"
    return regions, f"2 * ({base_r})"


def _words(em: Emitter, region: ClaimRegion) -> str:
    key = ("claim_words", region.base)
    if key not in em.memo:
        em.memo[key] = em.let("claims", f"ws_ptr.to(tl.pointer_type(tl.int64)) + {region.base}")
    return em.memo[key]


def emit_claim_phase(em: Emitter, regions: list, tokens: str) -> None:
    """The ``claim`` kernel body: programs over ``tokens`` (a kernel expression), BLOCK_M
    tokens each, one atomic max per token and cache write."""
    em.comment("slot claims: the later of two tokens with the same slot wins it")
    em.emit("pid = tl.program_id(0)")
    tok = em.let("tok", "pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)")
    tmask = em.let("tmask", f"{tok} < {tokens}")
    for region in regions:
        call = region.call
        slots = call.operands["slots"]
        if not em.is_memory(slots):
            raise em.unsupported(call, "slots must be a kernel input")
        em.stage_comment(call, f": claim slots of {slots.name}")
        words = _words(em, region)
        slot = em.let("slot", f"tl.load({em.tensor_name(slots)}_ptr + {tok}, mask={tmask}, "
                              f"other=-1).to(tl.int64)")
        ok = em.let("slot_ok", f"{tmask} & ({slot} >= 0) & ({slot} < {region.cap})")
        gen = em.let("gen", f"tl.load({words} + {region.cap}) + 1")
        # relaxed: the kernel boundary orders the claims before their readers
        em.emit(f"tl.atomic_max({words} + {slot}, ({gen} << {TOKEN_BITS}) | {tok}, mask={ok}, "
                f"sem=\"relaxed\")")
        em.emit("if pid == 0:")
        em.emit(f"    tl.store({words} + {region.cap} + 1, {gen})")


def claimed(em: Emitter, region: ClaimRegion, slot: str, ok: str, token: str) -> str:
    """``ok`` narrowed to the tokens that won their slot: by the claims (a phase after the
    claim launch) or, up to SCAN_TOKENS tokens, by scanning the later tokens' slots."""
    call = region.call
    slots, tokens = call.operands["slots"], call.operands["x"].type.shape[0]
    words = _words(em, region)
    won = em.tmp("won")
    em.emit("if CLAIMS:")
    with em.indented():
        gen = em.let("gen", f"tl.load({words} + {region.cap} + 1)")
        tag = em.let("tag", f"tl.load({words} + {slot}, mask={ok}, other=-1)")
        em.emit(f"{won} = {ok} & ({tag} == (({gen} << {TOKEN_BITS}) | {token}))")
    em.emit("else:")
    with em.indented():
        em.emit(f"{won} = {ok} & {em.lib('qft_slot_is_last')}({em.tensor_name(slots)}_ptr, "
                f"{slot}, {token}, {em.dim(tokens)}, {SCAN_BLOCK})")
    return won


def finish_claims(em: Emitter, regions: list) -> None:
    """In the last phase that reads the claims: program 0 hands the generation on."""
    for region in regions:
        words = _words(em, region)
        em.emit("if CLAIMS:")
        em.emit("    if pid == 0:")
        em.emit(f"        tl.store({words} + {region.cap}, tl.load({words} + {region.cap} + 1))")
