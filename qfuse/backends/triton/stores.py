"""Output stores: every kernel output at its own columns and shape.

* plain values: at the natural columns of their last dim (row space) or the tile;
* ``scale`` per_token ``[rows, 1]``: one value per row; per-group / mx: the natural
  columns of the scale (``B/K`` per row); per_tensor (static): program 0 stores it;
  per_128x128: each tile program stores its own entry;
* ``shuffle``: the E8M0 bytes at AITER's ``e8m0_shuffle`` index (the launcher pre-fills
  the padded output with the pad byte);
* ``cache_write``: the scatter of ``stages_cache``.
"""
from __future__ import annotations

from .emit import ROW, STORE, Cols, Emitter, Lead, Reg

__all__ = ["store_output", "storage_value"]


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
    em.indent += 1
    em.emit(f"tl.store({em.out_names[v]}_ptr, {storage_value(em, reg, v.type.dtype.name)})")
    em.indent -= 1


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


def s_shuffle(em: Emitter, call, v) -> None:
    s = call.operands["s"]
    lead = em.domain_lead
    cols = em.nat_cols(s)
    reg = em.value_at(s, lead, cols)
    r, c = lead.names[0], cols.var
    sn = em.dim(v.type.shape[1])
    em.stage_comment(call, f": e8m0_shuffle index, padded to {sn} columns")
    idx = em.let("shuf", f"({r} // 32) * 32 * {sn} + ({c} // 8) * 256 + ({c} % 4) * 64 + "
                         f"({r} % 16) * 4 + (({c} % 8) // 4) * 2 + ({r} % 32) // 16")
    mask = em.and_mask(lead.mask, cols.mask)
    em.emit(f"tl.store({em.out_names[v]}_ptr + {idx}, {storage_value(em, reg, 'e8m0')}, "
            f"mask={mask})")


STORE["shuffle"] = s_shuffle
