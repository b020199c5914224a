"""``norm``: RMSNorm / LayerNorm over the last dim, with an optional residual add.

The row statistics (sum of squares, mean, variance) are reductions over the whole row:
they are computed once per row (per ``lead``) from the norm input evaluated at the
natural columns, and every requested column reuses them. Formulas: docs/semantics.md.
"""
from __future__ import annotations

from ....dialect.options import FloatDType, NormKind, ResidualSum
from .emit import COMMENT_OPTIONS, RENDER, Emitter, Lead, Reg
from .stages_glue import round_float


def _norm_input(em: Emitter, call, lead: Lead, cols) -> tuple:
    """``(u, residual_out)`` registers at (lead, cols): ``u`` is what gets normalised."""
    def make():
        x = call.operands["x"]
        xv = em.f32(em.value_at(x, lead, cols))
        r = call.operands.get("residual")
        if r is None:
            return xv, None
        rv = em.f32(em.value_at(r, lead, cols))
        h = em.let("h", f"{xv} + {rv}")
        rout = round_float(em, h, x.type.dtype.name, "res_out")
        return (h if call.options["residual_sum"] == ResidualSum.FP32 else rout), rout
    return em.memo_get(("norm_u", id(call), lead.key, cols.key), make)


def _exact_squares(em: Emitter, call) -> bool:
    """Whether the norm input is a bf16 / f16 kernel input as loaded (masked lanes 0), or
    the bf16 / f16 rounding of two such inputs' sum: its squares are exact in fp32."""
    x, r = call.operands["x"], call.operands.get("residual")
    narrow = (FloatDType.BF16, FloatDType.F16)
    if x not in em.params or x.type.dtype.name not in narrow:
        return False
    return r is None or (r in em.params and call.options["residual_sum"] == ResidualSum.ROUNDED)


def _stats(em: Emitter, call, lead: Lead) -> tuple:
    """``(mean or None, inv)`` per row, [BLOCK_M, 1] each."""
    def make():
        x = call.operands["x"]
        width = x.type.shape[-1]
        cols = em.natural(em.base_block(width), width)
        u, _ = _norm_input(em, call, lead, cols)
        eps = em.f32(em.scalar(call.operands["eps"]))
        n = em.let("n_f32", f"{em.dim(width)} * 1.0")
        div, sqrt = em.helper("qf_div"), em.helper("qf_sqrt")
        ssum = em.lib("qft_sum")
        kind = call.options["kind"]
        em.comment(f"{kind} norm statistics over the row ({em.where_(call)})")
        if kind == NormKind.RMS:
            if _exact_squares(em, call):
                sq = f"{em.lib('qft_sum_sq_exact')}({u})"
            else:
                sq = f"{ssum}({u} * {u}, {cols.mask}, 1)"
            ms = em.let("ms", f"{div}({sq}, {n})")
            inv = em.let("inv", f"{div}(1.0, {sqrt}({ms} + {eps}))")
            return None, inv
        mean = em.let("mean", f"{div}({ssum}({u}, {cols.mask}, 1), {n})")
        d = em.let("d", f"{u} - {mean}")
        var = em.let("var", f"{div}({ssum}({d} * {d}, {cols.mask}, 1), {n})")
        inv = em.let("inv", f"{div}(1.0, {sqrt}({var} + {eps}))")
        return mean, inv
    return em.memo_get(("norm_stats", id(call), lead.key), make)


def r_norm(em: Emitter, call, which, lead, cols) -> Reg:
    if cols.var == "0":
        raise em.unsupported(call, "norm has no per-row value")
    u, rout = _norm_input(em, call, lead, cols)
    if which == "residual_out":
        return Reg(rout, "f32")
    mean, inv = _stats(em, call, lead)
    em.stage_comment(call)
    if mean is not None:
        u = em.let("d", f"{u} - {mean}")
    y = em.let("y", f"{u} * {inv}")
    w = call.operands.get("w")
    if w is not None:
        wv = em.f32(em.operand_at(w, lead, cols))
        if call.options["gemma"]:
            wv = em.let("w1", f"1.0 + {wv}")
        y = em.let("y", f"{y} * {wv}")
    b = call.operands.get("b")
    if b is not None:
        y = em.let("y", f"{y} + {em.f32(em.operand_at(b, lead, cols))}")
    return Reg(round_float(em, y, call.options["dtype"], call.results[0].name), "f32")


RENDER["norm"] = r_norm
COMMENT_OPTIONS["norm"] = ("kind", "dtype")
