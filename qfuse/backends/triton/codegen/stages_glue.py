"""Glue stages: elementwise math, activations, casts, split-K reduce, flatten, rope,
row gather and SmoothQuant. Formulas: docs/semantics.md and the reference's glue.py
(one IEEE fp32 operation per step, in the order written; ``/`` is ``qf_div``)."""
from __future__ import annotations

import math

from ....dialect.options import Act, FloatDType, GeluApprox, MRope, RopeStyle
from ....dialect.stages import STAGES
from .emit import COMMENT_OPTIONS, RENDER, Cols, Emitter, Lead, Reg, f32_literal

__all__ = ["round_float", "elementwise_chain"]

_SQRT2 = f32_literal(math.sqrt(2.0))
_SQRT_2_OVER_PI = f32_literal(math.sqrt(2.0 / math.pi))


def round_float(em: Emitter, var: str, dtype: str, hint: str = "r") -> str:
    """RNE of an fp32 register to bf16 / f16 (kept as the exact fp32 value)."""
    if dtype == FloatDType.BF16:
        return em.let(hint, f"{em.helper('qf_round_bf16')}({var})")
    if dtype == FloatDType.F16:
        return em.let(hint, f"{em.helper('qf_round_f16')}({var})")
    return var


def elementwise_chain(em: Emitter, v) -> bool:
    """True when ``v`` is a kernel input or built from inputs by elementwise stages only
    (the catalog's ``Stage.elementwise``; it may then be evaluated at any rows/columns,
    e.g. a column-dependent lead)."""
    call = em.producer.get(v)
    if call is None:
        return True
    if not STAGES[call.stage].elementwise(call.options, call.operands):
        return False
    return all(elementwise_chain(em, o) for o in call.operands.values()
               if o is not None and hasattr(o.type, "shape"))


def _binary(op):
    def render(em: Emitter, call, which, lead, cols) -> Reg:
        a = em.operand_at(call.operands["a"], lead, cols)
        b = em.operand_at(call.operands["b"], lead, cols)
        em.stage_comment(call)
        return Reg(em.let(call.results[0].name, f"{em.f32(a)} {op} {em.f32(b)}"), "f32")
    return render


def _silu(em: Emitter, x: str, hint: str) -> str:
    """silu(x) = x / (1 + exp(-x)), to a few ulp (numerics.qf_silu)."""
    return em.let(hint, f"{em.helper('qf_silu')}({x})")


def _gelu(em: Emitter, x: str, approx: str, hint: str) -> str:
    half = em.let("half", f"0.5 * {x}")
    if approx == GeluApprox.NONE:
        erf = f"tl.math.erf({em.helper('qf_div')}({x}, {_SQRT2}))"
        return em.let(hint, f"{half} * (1.0 + {erf})")
    inner = em.let("inner", f"{x} + 0.044715 * (({x} * {x}) * {x})")
    z = em.let("z", f"{_SQRT_2_OVER_PI} * {inner}")
    # 1 + tanh(z) = 2 / (1 + exp(-2z)): Triton has no portable tanh, and this form has no
    # cancellation where tanh(z) is near -1 (a few ulp everywhere, as docs/semantics.md allows)
    t = em.let("one_tanh", f"{em.helper('qf_div')}(2.0, 1.0 + tl.exp(-2.0 * {z}))")
    return em.let(hint, f"{half} * {t}")


def _act(em: Emitter, x: str, act: str, hint: str) -> str:
    if act == Act.SILU:
        return _silu(em, x, hint)
    return _gelu(em, x, GeluApprox.NONE if act == Act.GELU else GeluApprox.TANH, hint)


def r_silu(em: Emitter, call, which, lead, cols) -> Reg:
    x = em.value_at(call.operands["x"], lead, cols)
    em.stage_comment(call)
    return Reg(_silu(em, em.f32(x), call.results[0].name), "f32")


def r_gelu(em: Emitter, call, which, lead, cols) -> Reg:
    x = em.value_at(call.operands["x"], lead, cols)
    em.stage_comment(call)
    return Reg(_gelu(em, em.f32(x), call.options["approx"], call.results[0].name), "f32")


def r_act_mul(em: Emitter, call, which, lead, cols) -> Reg:
    x = call.operands["x"]
    if cols.var == "0":
        raise em.unsupported(call, "act_mul has no per-row value")
    half = em.dim(call.results[0].type.shape[-1])
    up_cols = Cols(em.let("cols_up", f"{cols.var} + {half}"), cols.mask, f"({cols.key})+{half}")
    g = em.value_at(x, lead, cols)
    u = em.value_at(x, lead, up_cols)
    em.stage_comment(call, f": act(x[c]) * x[c + {half}]")
    a = _act(em, em.f32(g), call.options["act"], "act")
    return Reg(em.let(call.results[0].name, f"{a} * {em.f32(u)}"), "f32")


def r_cast(em: Emitter, call, which, lead, cols) -> Reg:
    x = em.value_at(call.operands["x"], lead, cols)
    em.stage_comment(call)
    return Reg(round_float(em, em.f32(x), call.options["dtype"], call.results[0].name), "f32")


def r_reduce(em: Emitter, call, which, lead, cols) -> Reg:
    x = call.operands["x"]
    if not em.is_memory(x):
        raise em.unsupported(call, "split-K partials must be a kernel input (they are read "
                                   "once per split, in order)")
    em.stage_comment(call, f": ((x[0] + x[1]) + ...) over {x.type.shape[0]} splits, in order")
    acc = em.load(x, Lead(("0",) + lead.names, lead.mask, ""), cols, "acc")
    s = em.tmp("split")
    splits = em.constexpr_dim(x.type.shape[0], "SPLITS")
    em.emit(f"for {s} in tl.static_range(1, {splits}):")
    with em.indented():
        part = em.load(x, Lead((s,) + lead.names, lead.mask, ""), cols, "part")
        em.emit(f"{acc.var} = {acc.var} + {part.var}")
    return acc


def r_flatten(em: Emitter, call, which, lead, cols) -> Reg:
    x = call.operands["x"]
    if cols.var == "0" or not elementwise_chain(em, x):
        raise em.unsupported(call, "flatten reads its input at [m, c // B, c % B]: the input "
                                   "must be a kernel input or elementwise in kernel inputs")
    b = em.dim(x.type.shape[2])
    em.stage_comment(call, f": [m, c // {b}, c % {b}]")
    a_idx = em.let("fa", f"({cols.var} // {b}).to(tl.int64)")
    b_idx = em.let("fb", f"{cols.var} % {b}")
    xl = Lead(lead.names + (a_idx,), lead.mask, f"({','.join(lead.names)},{a_idx}|{lead.mask})")
    return em.value_at(x, xl, Cols(b_idx, cols.mask, f"({cols.key})%{b}"))


def r_rope(em: Emitter, call, which, lead, cols) -> Reg:
    x, cos, sin, pos = (call.operands[k] for k in ("x", "cos", "sin", "pos"))
    if cols.var == "0":
        raise em.unsupported(call, "rope has no per-row value")
    style = call.options["style"]
    rh = em.dim(cos.type.shape[1])
    c = cols.var
    em.stage_comment(call, f": rotary dim 2 * {rh}")
    if call.options["mrope"] == MRope.NONE:
        p = em.element(pos, lead.names[:1], lead.mask)
    if style == RopeStyle.NEOX:
        first = em.let("first", f"{c} < {rh}")
        i = em.let("ri", f"tl.where({first}, {c}, {c} - {rh})")
        partner = em.let("partner", f"tl.where({first}, {c} + {rh}, {c} - {rh})")
    else:
        first = em.let("first", f"({c} % 2) == 0")
        i = em.let("ri", f"{c} // 2")
        partner = em.let("partner", f"tl.where({first}, {c} + 1, {c} - 1)")
    rot = em.let("in_rot", f"{c} < 2 * {rh}")
    rmask = em.and_mask(cols.mask, rot)
    if call.options["mrope"] != MRope.NONE:
        p = _mrope_position(em, call, i, lead)
    # a position outside the table [0, P) reads nothing and rotates by NaN (the reference's
    # defined result, docs/semantics.md "Indices from data")
    pl, pos_ok, cs_mask = _index_lead(em, p, em.dim(cos.type.shape[0]), lead, "pos")
    cs_lead = Lead((pl,), cs_mask, f"({pl}|{cs_mask})")
    icols = Cols(i, rmask, f"rope_i[{cols.key}]")
    cs = em.let("cos_p", f"tl.where({pos_ok}, {em.f32(em.value_at(cos, cs_lead, icols))}, "
                         f"float(\"nan\"))")
    sn = em.let("sin_p", f"tl.where({pos_ok}, {em.f32(em.value_at(sin, cs_lead, icols))}, "
                         f"float(\"nan\"))")
    xc = em.f32(em.value_at(x, lead, cols))
    xp = em.f32(em.value_at(x, lead, Cols(partner, rmask, f"rope_p[{cols.key}]")))
    a = em.let("xc_cos", f"{xc} * {cs}")
    b = em.let("xp_sin", f"{xp} * {sn}")
    o = em.let("rot", f"tl.where({first}, {a} - {b}, {a} + {b})")
    return Reg(em.let(call.results[0].name, f"tl.where({rot}, {o}, {xc})"), "f32")


def _mrope_position(em: Emitter, call, i: str, lead: Lead) -> Reg:
    """mrope: ``pos[r(i), t]`` per column, ``r(i)`` the section row of frequency ``i``."""
    o, rh = call.options, em.dim(call.operands["cos"].type.shape[1])
    h, w = int(o["mrope_h"]), int(o["mrope_w"])
    if o["mrope"] == MRope.CHUNKED:            # t: [0, R/2 - h - w), then h, then w
        t0 = em.let("sec_t", f"{rh} - {h + w}")
        r = em.let("mrow", f"({i} >= {t0}).to(tl.int64) + ({i} >= {t0} + {h}).to(tl.int64)")
    else:                                      # interleaved: i % 3 == 1 (h), 2 (w)
        r = em.let("mrow", f"tl.where(({i} % 3 == 1) & ({i} < {3 * h}), 1, "
                           f"tl.where(({i} % 3 == 2) & ({i} < {3 * w}), 2, 0)).to(tl.int64)")
    return em.element(call.operands["pos"], (r, lead.names[0]), lead.mask)


def _index_lead(em: Emitter, idx: Reg, bound: str, lead: Lead, hint: str):
    """A loaded row index as a lead entry, with its validity ``0 <= t < bound``."""
    t = em.let(hint, f"{idx.var}.to(tl.int64)")
    ok = em.let(hint + "_ok", f"({t} >= 0) & ({t} < {bound})")
    return t, ok, em.and_mask(lead.mask, ok)


def r_gather(em: Emitter, call, which, lead, cols) -> Reg:
    x, idx = call.operands["x"], call.operands["idx"]
    em.stage_comment(call, ": out[i] = x[idx[i]], zero rows outside [0, M)")
    i = em.element(idx, lead.names[:1], lead.mask)
    topk = call.options["topk"]
    slot_ok = None
    if call.options["packed_ids"]:
        raw = i
        i = Reg(em.let("ids", f"{raw.var} & 0xFFFFFF"), i.kind)
        if topk > 1:            # token * topk + slot; a slot outside [0, topk): a zero row
            k = em.let("slot", f"{raw.var} >> 24")
            slot_ok = em.let("slot_ok", f"({k} >= 0) & ({k} < {topk})")
            i = Reg(em.let("ids", f"{i.var}.to(tl.int64) * {topk} + "
                                  f"tl.where({slot_ok}, {k}, 0)"), "i64")
    t, ok, mask = _index_lead(em, i, em.dim(x.type.shape[0]), lead, "grow")
    if slot_ok is not None:
        ok = em.let("grow_ok", f"{ok} & {slot_ok}")
        mask = em.and_mask(mask, slot_ok)
    xl = Lead((t,) + lead.names[1:], mask, f"({t},{','.join(lead.names[1:])}|{mask})")
    v = em.value_at(x, xl, cols)
    if em.is_memory(x):
        return v                        # masked load: other=0 is the zero row
    zero = "0.0" if v.kind == "f32" else "0"
    return Reg(em.let(call.results[0].name, f"tl.where({ok}, {v.var}, {zero})"), v.kind)


def r_smooth(em: Emitter, call, which, lead, cols) -> Reg:
    x, s, ids = call.operands["x"], call.operands["s"], call.operands.get("ids")
    if ids is None:
        xv = em.value_at(x, lead, cols)
        sv = em.operand_at(s, lead, cols)
        em.stage_comment(call)
        return Reg(em.let(call.results[0].name, f"{em.f32(xv)} * {em.f32(sv)}"), "f32")
    # y[m, k, :] = x[m, :] * s[ids[m, k], :]; an id outside [0, E) gives a zero row
    em.stage_comment(call, ": x[m] * s[ids[m, k]], zero rows for ids outside [0, E)")
    m = Lead(lead.names[:1], lead.mask, f"({lead.names[0]}|{lead.mask})")
    e = em.element(ids, lead.names, lead.mask)
    t, ok, mask = _index_lead(em, e, em.dim(s.type.shape[0]), lead, "expert")
    sv = em.f32(em.value_at(s, Lead((t,), mask, f"({t}|{mask})"), cols))
    xv = em.f32(em.value_at(x, m if x.type.rank == 2 else lead, cols))   # [M, K, N]: its own
    return Reg(em.let(call.results[0].name, f"tl.where({ok}, {xv} * {sv}, 0.0)"), "f32")


RENDER.update({
    "add": _binary("+"), "mul": _binary("*"), "silu": r_silu, "gelu": r_gelu,
    "act_mul": r_act_mul, "cast": r_cast, "reduce": r_reduce, "flatten": r_flatten,
    "rope": r_rope, "gather": r_gather, "smooth": r_smooth,
})
COMMENT_OPTIONS.update({"cast": ("dtype",), "rope": ("style",), "act_mul": ("act",),
                        "gelu": ("approx",), "gather": ("packed_ids",)})
