"""Output stores: every kernel output at its own columns and shape.

A plain value is stored at the natural columns of its last dim (row space) or at the
tile; a stage whose outputs have their own rule registers it in :data:`~.emit.STORE`
(``scale``: stages_quant; ``shuffle``: stages_layout; ``cache_write``: stages_cache).
"""
from __future__ import annotations

from .emit import STORE, Cols, Emitter, Lead, Reg

__all__ = ["store_outputs", "store_output", "store_plain", "store_at", "scalar_store",
           "storage_value"]


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


def scalar_store(em: Emitter, v, reg: Reg) -> None:
    """One value, stored by the first program."""
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
    em.emit("")
    em.comment(f"output {em.out_names[v]}: {v.type}")
    if call is not None and call.stage in STORE:
        STORE[call.stage](em, call, v)
    else:
        store_plain(em, v)


def store_plain(em: Emitter, v) -> None:
    """``v`` at the tile (tile space) or at the natural columns of its block."""
    lead = em.domain_lead
    cols = em.tile_cols if em.space == "tile" else em.nat_cols(v)
    store_at(em, v, lead, cols, em.value_at(v, lead, cols))
