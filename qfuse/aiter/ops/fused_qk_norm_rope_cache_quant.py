"""``aiter.ops.fused_qk_norm_rope_cache_quant`` (AITER's module of the fused QK RMSNorm +
RoPE + KV-cache write (+ per-token quant), ``qk_norm_rope_cache*.qp``); also re-exported
by ``aiter.ops.cache``. Backend: hip."""
from __future__ import annotations

from ...dialect.options import RopeStyle
from .. import _args as A
from ._fused import Binding
from ._kv_args import INDEX, cache_dsl, scales

__all__ = ["fused_qk_norm_rope_cache_quant_shuffle"]


def bind_qk_norm_rope(b: Binding, qkv, num_heads_q, num_heads_k, num_heads_v, head_dim, eps,
                      qw, kw, cos_sin, rotary_dim: int, is_neox_style: bool,
                      cs_name: str = "cos_sin") -> tuple:
    """Bind the q / k / v heads of ``qkv [T, (Hq + Hk + Hv) * D]`` (views), the norm
    weights and epsilon, and the cos / sin halves of ``cos_sin [P, rotary_dim]``; returns
    ``(q, k, v)``."""
    func = b.func
    A.tensor(func, "qkv", qkv)
    hq, hk, hv, d = int(num_heads_q), int(num_heads_k), int(num_heads_v), int(head_dim)
    A.need(hk == hv, func, f"num_heads_k and num_heads_v must be equal (one cache head "
           f"count), got {hk} and {hv}")
    A.need(qkv.numel() % ((hq + hk + hv) * d) == 0 and qkv.stride(-1) == 1, func,
           f"qkv must be [num_tokens, {(hq + hk + hv) * d}] contiguous, got shape "
           f"{tuple(qkv.shape)}")
    rows = qkv.reshape(-1, hq + hk + hv, d)
    q, k, v = rows[:, :hq], rows[:, hq:hq + hk], rows[:, hq + hk:]
    for name, t in (("q", q), ("k", k), ("v", v)):
        b.rows(name, t, "X", name, rank=3)
    b.vector("qw", qw, d, "W", "qw")
    b.vector("kw", kw, d, "W", "kw")
    b.scalar("eps", eps, "eps")
    A.tensor(func, cs_name, cos_sin)
    A.need(rotary_dim % 2 == 0 and 0 < rotary_dim <= d and cos_sin.dim() == 2
           and cos_sin.shape[1] == rotary_dim, func,
           f"{cs_name} must be [max_positions, {rotary_dim}] (the rotary dim, even, at most "
           f"the head size {d}), got shape {tuple(cos_sin.shape)}")
    b.subs["C"] = A.float_dsl(func, cs_name, cos_sin)
    half = rotary_dim // 2
    b.kw.update(cos=cos_sin[:, :half], sin=cos_sin[:, half:])
    b.subs["STYLE"] = str(RopeStyle.NEOX if is_neox_style else RopeStyle.GPTJ)
    return q, k, v


def fused_qk_norm_rope_cache_quant_shuffle(qkv, num_heads_q: int, num_heads_k: int,
                                           num_heads_v: int, head_dim: int, eps: float, qw,
                                           kw, cos_sin_cache, is_neox_style: bool, pos_ids,
                                           k_cache, v_cache, slot_mapping, kv_cache_dtype: str,
                                           k_scale, v_scale) -> None:
    """Per token of ``qkv [T, (Hq + Hk + Hv) * D]`` (updated in place): RMSNorm the q and
    k heads (weights ``qw`` / ``kw [D]``), rotate them by ``cos_sin_cache [P, D]`` (cos
    half, sin half) at ``pos_ids`` (neox or gptj pairs), write q and k back into ``qkv``,
    and write k and v into the caches at ``slot_mapping`` (key layout; value in the asm
    layout ``[blocks, heads, block_size/x, D, x]``): copied (``kv_cache_dtype="auto"``) or
    per-token quantised with scales ``[blocks, heads, block_size]``. qfuse computes the
    norm, weight and rotation in fp32 and rounds once (AITER's torch reference rounds the
    normalised value, the weight product and each rotation product to the input dtype)."""
    func = "fused_qk_norm_rope_cache_quant_shuffle"
    quantised = kv_cache_dtype != "auto"
    if kv_cache_dtype not in ("auto", "fp8", "fp8_e4m3"):
        raise A.unsupported(func, f"kv_cache_dtype={kv_cache_dtype!r} is not supported "
                            f"('auto', 'fp8_e4m3')")
    b = Binding(func)
    q, k, v = bind_qk_norm_rope(b, qkv, num_heads_q, num_heads_k, num_heads_v, head_dim,
                                eps, qw, kw, cos_sin_cache, int(head_dim), is_neox_style,
                                "cos_sin_cache")
    rows, hk, d = q.shape[0], k.shape[1], int(head_dim)
    A.tensor(func, "pos_ids", pos_ids)
    b.subs["PI"] = INDEX.get(pos_ids.dtype, "")
    A.need(b.subs["PI"] != "" and pos_ids.numel() == rows, func,
           f"pos_ids must be int32/int64 [{rows}], got {pos_ids.dtype} "
           f"{tuple(pos_ids.shape)}")
    b.kw["pos"] = pos_ids.reshape(-1)
    kc, b.subs["KC"] = cache_dsl(func, "k_cache", k_cache, quantised)
    vc, b.subs["VC"] = cache_dsl(func, "v_cache", v_cache, quantised)
    A.need(kc.dim() == 5 and vc.is_contiguous(), func, "k_cache must be [num_blocks, heads, "
           "head_dim/x, block_size, x] and v_cache a contiguous cache")
    nb, _, _, bs, x = kc.shape
    vx = 16 // vc.element_size()
    A.need(vc.numel() == nb * hk * bs * d and bs % vx == 0, func,
           f"v_cache must hold [num_blocks={nb}, {hk}, block_size={bs}, {d}] entries")
    b.kw.update(kc=kc, vc=vc.view(nb, hk, bs // vx, d, vx))
    b.subs.update(VECK=str(x), VECV=str(vx))
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = INDEX.get(slot_mapping.dtype, "i64")
    b.kw["slots"] = slot_mapping
    if quantised:
        scales(b, k_scale, v_scale)
    out = (b.run("qk_norm_rope_cache_quant", "qk_norm_rope_cache_scaled", "hip") if quantised
           else b.run("qk_norm_rope_cache", "qk_norm_rope_cache", "hip"))
    q.copy_(out["qn"])
    k.copy_(out["kn"])
