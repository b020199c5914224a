"""Output stores: every kernel output at its own columns and shape.

* plain values: at the natural columns of their last dim (row space) or the tile;
* ``scale`` per_token ``[rows, 1]``: one value per row; per-group / mx: the natural
  columns of the scale (``B/K`` per row); per_tensor (static): program 0 stores it;
  per_128x128: each tile program stores its own entry;
* ``shuffle``: the E8M0 bytes at AITER's ``e8m0_shuffle`` index, and the pad byte at
  every other position of the padded buffer;
* ``cache_write``: the scatter of ``stages_cache``.
"""
from __future__ import annotations

from .emit import ROW, STORE, Cols, Emitter, Lead, Reg

__all__ = ["store_outputs", "store_output", "storage_value"]


_TL = {"f32": "tl.float32", "i32": "tl.int32", "i64": "tl.int64", "i8": "tl.int8",
       "u8": "tl.uint8"}


def storage_value(em: Emitter, reg: Reg, dtype: str) -> str:
    """A register converted to the bits stored for a tensor of qfuse ``dtype``."""
    if dtype == "bf16":
        return f"{em.lib('qft_f32_to_bf16')}({em.f32(reg)})"
    if dtype == "f16":
        return f"{em.f32(reg)}.to(tl.float16)"
    want = {"f32": "f32", "i32": "i32", "i64": "i64", "i8": "i8", "int4": "i8"}.get(dtype, "u8")
    return reg.var if reg.kind == want else f"{reg.var}.to({_TL[want]})"


def out_address(em: Emitter, v, lead: Lead, cols: Cols) -> str:
    name = em.out_names[v]
    terms = [f"{name}_ptr"] + [f"{i} * {name}_s{k}" for k, i in enumerate(lead.names)]
    if cols.var != "0":
        terms.append(cols.var)
    return " + ".join(terms)


def store_at(em: Emitter, v, lead: Lead, cols: Cols, reg: Reg) -> None:
    mask = em.and_mask(lead.mask, cols.mask)
    val = storage_value(em, reg, v.type.dtype.name)
    em.emit(f"tl.store({out_address(em, v, lead, cols)}, {val}" +
            (f", mask={mask})" if mask else ")"))


def _scalar_store(em: Emitter, v, reg: Reg) -> None:
    cond = "pid == 0" if em.space != "tile" else "(pid_m == 0) & (pid_n == 0)"
    em.emit(f"if {cond}:")
    with em.indented():
        em.emit(f"tl.store({em.out_names[v]}_ptr, {storage_value(em, reg, v.type.dtype.name)})")


def store_outputs(em: Emitter, values) -> None:
    """Store each of ``values`` (the kernel's returns; repeats stored once)."""
    for v in dict.fromkeys(values):
        store_output(em, v)


def store_output(em: Emitter, v) -> None:
    _store_output(em, v)
    em.close_fork()


def _store_output(em: Emitter, v) -> None:
    call = em.producer.get(v)
    lead = em.domain_lead
    em.emit("")
    em.comment(f"output {em.out_names[v]}: {v.type}")
    if call is not None and call.stage in STORE:
        STORE[call.stage](em, call, v)
        return
    if call is not None and call.stage == "scale":
        gran = call.options["granularity"]
        if gran == "per_tensor":
            _scalar_store(em, v, em.value_at(v, em.make_lead((), None), ROW))
            return
        if gran == "per_token":
            store_at(em, v, lead, ROW, em.value_at(v, lead, ROW))
            return
        if gran == "per_128x128":
            reg = em.value_at(v, lead, em.tile_cols)
            pm, pn = em.tile_ids
            name = em.out_names[v]
            em.emit(f"tl.store({name}_ptr + {pm} * {name}_s0 + {pn}, "
                    f"{storage_value(em, reg, 'f32')})")
            return
    cols = em.tile_cols if em.space == "tile" else em.nat_cols(v)
    store_at(em, v, lead, cols, em.value_at(v, lead, cols))


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
        em.emit(f"tl.store({out} + {_shuffle_index('pad_r', 'pad_c', sn)}, "
                f"tl.full([{_PAD_CELLS}], {pad}, tl.uint8), mask=pad_k < {total})")
    # whole 32-row blocks from there on fill one contiguous byte range
    hi = em.let("pad_hi", f"{mp} * {sn}")
    em.emit(f"for pad_b0 in range({r32} * {sn} + {me} * {_PAD_BYTES}, {hi}, "
            f"{progs} * {_PAD_BYTES}):")
    with em.indented():
        em.emit(f"pad_b = pad_b0 + tl.arange(0, {_PAD_BYTES})")
        em.emit(f"tl.store({out} + pad_b, tl.full([{_PAD_BYTES}], {pad}, tl.uint8), "
                f"mask=pad_b < {hi})")


STORE["shuffle"] = s_shuffle
