"""``shuffle``: the E8M0 preshuffle, a store layout of an mx scale.

The scale bytes go to AITER's ``e8m0_shuffle`` positions of the padded buffer, and the
pad byte to every other position (formula: docs/semantics.md, reference ``layout.py``).
The value itself is its operand's, at the operand's block and over its rows; the store
addresses the output as one flat buffer.
"""
from __future__ import annotations

from .emit import FLAT_OUTPUTS, NAT_BLOCK, OUT_ROWS, STORE, Emitter
from .stores import storage_value

__all__ = ["s_shuffle"]

_PAD_CELLS = 256           # pad cells at shuffled positions a program writes per step
_PAD_BYTES = 1024          # contiguous pad bytes a program writes per step


def _shuffle_index(r: str, c: str, sn: str) -> str:
    """AITER's e8m0_shuffle position of scale (r, c) in a buffer of ``sn`` columns."""
    return (f"({r} // 32) * 32 * {sn} + ({c} // 8) * 256 + ({c} % 4) * 64 + "
            f"({r} % 16) * 4 + (({c} % 8) // 4) * 2 + ({r} % 32) // 16")


def s_shuffle(em: Emitter, call, v) -> None:
    """The E8M0 bytes at their shuffled positions, then the pad byte at every position of
    the padded [round_up(M, 256), round_up(S, 8)] buffer that holds no scale: rows M.. of
    every column, and columns S.. of rows ..M. Rows from the first whole 32-row block
    past M fill one contiguous byte range (the shuffle keeps 32-row blocks apart); the
    rest (< 32 rows, < 8 columns of each row) is written at its shuffled positions. Both
    are shared out over all programs, so the kernel writes every byte of the buffer (no
    separate fill launch); with M % 32 == 0 and S % 8 == 0 only the range is left."""
    s = call.operands["s"]
    lead = em.domain_lead
    cols = em.nat_cols(s)
    reg = em.value_at(s, lead, cols)
    r, c = lead.names[0], cols.var
    sn = em.dim(v.type.shape[1])
    em.stage_comment(call, f": e8m0_shuffle index, padded to {sn} columns")
    out = f"{em.out_names[v]}_ptr"
    idx = em.let("shuf", _shuffle_index(r, c, sn))
    mask = em.and_mask(lead.mask, cols.mask)
    em.emit(f"tl.store({out} + {idx}, {storage_value(em, reg, 'e8m0')}, mask={mask})")
    m, g, mp = em.dim(s.type.shape[0]), em.dim(s.type.shape[1]), em.dim(v.type.shape[0])
    pad = int(call.options["pad"])
    em.comment(f"pad byte {pad} at the {mp} x {sn} cells without a scale, shared out over "
               "the programs")
    me = em.let("pad_prog", "pid * tl.num_programs(1) + pid_c" if em.ctx.col_split else "pid")
    progs = em.let("pad_progs", "tl.num_programs(0) * tl.num_programs(1)" if em.ctx.col_split
                   else "tl.num_programs(0)")
    r32 = em.let("pad_r32", f"({m} + 31) // 32 * 32")
    # rows M.. of the last 32-row block, then columns S.. of rows ..M: at their positions
    part = em.let("pad_part", f"({r32} - {m}) * {sn}")
    extra = em.let("pad_cols", f"tl.maximum({sn} - {g}, 1)")
    total = em.let("pad_cells", f"{part} + {m} * ({sn} - {g})")
    em.emit(f"for pad_k0 in range({me} * {_PAD_CELLS}, {total}, {progs} * {_PAD_CELLS}):")
    with em.indented():
        em.emit(f"pad_k = pad_k0 + tl.arange(0, {_PAD_CELLS})")
        em.emit(f"pad_in_rows = pad_k < {part}")
        em.emit(f"pad_k2 = pad_k - {part}")
        em.emit(f"pad_r = tl.where(pad_in_rows, {m} + pad_k // {sn}, pad_k2 // {extra})")
        em.emit(f"pad_c = tl.where(pad_in_rows, pad_k % {sn}, {g} + pad_k2 % {extra})")
        # on AMD the index goes through a select (masked lanes address 0, the same bytes
        # are written): Triton's AMD pointer canonicalisation (buffer ops) expands the
        # nested quotients and remainders term by term, from about 640 to 113,000 lines of
        # IR, and make_ttgir did not finish in 20 minutes; with the select, 1 s. NVIDIA
        # keeps the plain index (the branch is a constexpr)
        idx = _shuffle_index('pad_r', 'pad_c', sn)
        fill = f"tl.full([{_PAD_CELLS}], {pad}, tl.uint8), mask=pad_k < {total})"
        em.emit(f"if {em.lib('qft_amd_target')}():")
        with em.indented():
            em.emit(f"tl.store({out} + tl.where(pad_k < {total}, {idx}, 0), {fill}")
        em.emit("else:")
        with em.indented():
            em.emit(f"tl.store({out} + {idx}, {fill}")
    # whole 32-row blocks from there on fill one contiguous byte range
    hi = em.let("pad_hi", f"{mp} * {sn}")
    em.emit(f"for pad_b0 in range({r32} * {sn} + {me} * {_PAD_BYTES}, {hi}, "
            f"{progs} * {_PAD_BYTES}):")
    with em.indented():
        em.emit(f"pad_b = pad_b0 + tl.arange(0, {_PAD_BYTES})")
        em.emit(f"tl.store({out} + pad_b, tl.full([{_PAD_BYTES}], {pad}, tl.uint8), "
                f"mask=pad_b < {hi})")


STORE["shuffle"] = s_shuffle
NAT_BLOCK["shuffle"] = lambda em, call: em.nat_block(call.operands["s"])
OUT_ROWS["shuffle"] = lambda call, v: tuple(call.operands["s"].type.shape[:-1])
FLAT_OUTPUTS.add("shuffle")
