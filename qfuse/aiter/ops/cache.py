"""``aiter.ops.cache`` on qfuse pipelines (``cache.qp``, ``cache_quant.qp``,
``indexer_cache.qp``, ``qk_norm_rope_cache*.qp``, ``qk_norm_mrope_cache*.qp``): paged
KV-cache writes, plain or quantised, into the caller's caches (in place, as AITER's
kernels), and the fused QK-norm + RoPE / mRoPE writes.

Layouts (aiter-semantics.md 9): key cache ``[num_blocks, num_heads, head_size/x,
block_size, x]``; value cache ``[num_blocks, num_heads, head_size, block_size]``, or with
``asm_layout`` ``[num_blocks, num_heads, block_size/x, head_size, x]``; ``x`` is the
cache's last dim (AITER: ``16 / element size``). ``slot_mapping[t]`` is the global slot;
a negative slot skips the token; a slot past the cache skips it too (AITER writes out of
bounds); a slot given twice keeps the later token. Quantisation: ``fp8`` with the
per-tensor ``k_scale`` / ``v_scale`` (``x * (1 / scale)``, RNE, saturating); per token
``s = amax(head row) / dtype_max`` stored as is, codes ``x * (1 / max(s, 1e-12))``; per
block as in docs/semantics.md (``cache_write``), re-quantising a partly filled block when
its scale grows (``_for_asm_pa``: one scale per ``ori_block_size`` slots, spanning
several cache blocks). int8 caches round toward zero. Backend: hip.
"""
from __future__ import annotations

import torch

from ...dialect.options import RopeStyle
from .. import _args as A
from .. import dtypes
from ._fused import Binding

__all__ = ["reshape_and_cache", "reshape_and_cache_with_pertoken_quant",
           "reshape_and_cache_with_block_quant", "reshape_and_cache_with_block_quant_for_asm_pa",
           "indexer_k_quant_and_cache", "fused_qk_norm_rope_cache_quant_shuffle",
           "fused_qk_norm_mrope_3d_cache_pts_quant_shuffle",
           "fused_qk_norm_mrope_3d_cache_quant_shuffle"]

#: cache dtypes of a quantised cache (a uint8 cache holds dtypes.fp8 bytes, as in vLLM)
_QUANT_CACHE = {torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e4m3fnuz: "fp8_e4m3fnuz",
                torch.int8: "i8"}
_INDEX = {torch.int32: "i32", torch.int64: "i64"}


def _cache_dsl(func: str, name: str, cache, quantised: bool) -> tuple:
    """``(the cache as the pipeline reads it, its DSL dtype)``."""
    A.tensor(func, name, cache)
    if quantised:
        if cache.dtype == torch.uint8:
            cache = cache.view(dtypes.fp8)
        dsl = _QUANT_CACHE.get(cache.dtype)
        A.need(dsl is not None, func, f"{name} of a quantised cache must be fp8 or int8, got "
               f"{cache.dtype}")
        return cache, dsl
    return cache, A.float_dsl(func, name, cache)


def _kv(func: str, key, value, key_cache, value_cache, slot_mapping, asm_layout: bool,
        quantised: bool) -> Binding:
    """Bind key, value, the two caches and slot_mapping (in that order)."""
    b = Binding(func)
    A.tensor(func, "key", key, dims=(3,))
    A.tensor(func, "value", value, dims=(3,))
    A.need(key.shape == value.shape, func, f"key and value must have one shape, got "
           f"{tuple(key.shape)} and {tuple(value.shape)}")
    b.rows("key", key, "X", "k", rank=3)
    A.need(value.dtype == key.dtype, func, f"value must have key's dtype {key.dtype}, got "
           f"{value.dtype}")
    b.rows("value", value, "X", "v", rank=3)
    kc, b.subs["KC"] = _cache_dsl(func, "key_cache", key_cache, quantised)
    vc, b.subs["VC"] = _cache_dsl(func, "value_cache", value_cache, quantised)
    A.need(kc.dim() == 5, func, f"key_cache must be [num_blocks, num_heads, head_size/x, "
           f"block_size, x], got shape {tuple(kc.shape)}")
    want = 5 if asm_layout else 4
    A.need(vc.dim() == want, func, "value_cache must be " + (
        "[num_blocks, num_heads, block_size/x, head_size, x] (asm_layout)" if asm_layout
        else "[num_blocks, num_heads, head_size, block_size]") + f", got shape "
           f"{tuple(vc.shape)}")
    b.kw.update(kc=kc, vc=vc)
    b.subs.update(VECK=str(kc.shape[-1]),
                  VECV=str(vc.shape[-1] if asm_layout else 16 // vc.element_size()))
    if asm_layout:
        b.subs.update(VL="value_asm", VSHAPE="NB, H, BSX, D, XV")
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = _INDEX.get(slot_mapping.dtype, "")
    A.need(b.subs["I"] != "", func, f"slot_mapping must be int32 or int64, got "
           f"{slot_mapping.dtype}")
    b.kw["slots"] = slot_mapping
    return b


def _scales(b: Binding, ks, vs, names=("k_scale", "v_scale")) -> None:
    for name, param, t in zip(names, ("ks", "vs"), (ks, vs)):
        A.tensor(b.func, name, t)
        A.need(t.dtype == torch.float32, b.func, f"{name} must be float32, got {t.dtype}")
        b.kw[param] = t


def _scaled_kv(func: str, key, value, key_cache, value_cache, ks, vs, slot_mapping,
               asm_layout: bool, **subs) -> None:
    """A per-token or per-block quantised write with its dequant scale tables."""
    b = _kv(func, key, value, key_cache, value_cache, slot_mapping, asm_layout, True)
    _scales(b, ks, vs, ("k_dequant_scales", "v_dequant_scales"))
    b.subs.update(SL="asm" if asm_layout else "default", **subs)
    b.run("cache_quant", "kv_scaled", "hip")


def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor,
                      value_cache: torch.Tensor, slot_mapping: torch.Tensor, kv_cache_dtype: str,
                      k_scale: torch.Tensor | None = None, v_scale: torch.Tensor | None = None,
                      asm_layout: bool = False) -> None:
    """Write ``key`` / ``value [T, H, D]`` into the paged caches at ``slot_mapping``:
    ``kv_cache_dtype="auto"`` copies (rounding to a float cache's dtype); ``"fp8"`` /
    ``"fp8_e4m3"`` quantises with the per-tensor ``k_scale`` / ``v_scale`` (1 if absent)."""
    func = "reshape_and_cache"
    if kv_cache_dtype not in ("auto", "fp8", "fp8_e4m3"):
        raise A.unsupported(func, f"kv_cache_dtype={kv_cache_dtype!r} is not supported "
                            f"('auto', 'fp8', 'fp8_e4m3')")
    quantised = kv_cache_dtype != "auto"
    b = _kv(func, key, value, key_cache, value_cache, slot_mapping, asm_layout, quantised)
    if quantised:
        one = torch.ones(1, dtype=torch.float32, device=key.device)
        ks = one if k_scale is None else k_scale.reshape(1).to(torch.float32)
        vs = one if v_scale is None else v_scale.reshape(1).to(torch.float32)
        _scales(b, ks, vs)
    if quantised:
        b.run("cache_quant", "kv_static", "hip")
    else:
        b.run("cache", "kv_copy", "hip")


def reshape_and_cache_with_pertoken_quant(key: torch.Tensor, value: torch.Tensor,
                                          key_cache: torch.Tensor, value_cache: torch.Tensor,
                                          k_dequant_scales: torch.Tensor,
                                          v_dequant_scales: torch.Tensor,
                                          slot_mapping: torch.Tensor, asm_layout: bool) -> None:
    """Per-token (token, head) fp8 / int8 quantised KV write; the dequant scales go to
    ``[num_heads, max_kv_tokens]`` at ``[h, slot]`` (asm: ``[num_blocks, num_heads,
    block_size]`` at ``[block, h, offset]``)."""
    _scaled_kv("reshape_and_cache_with_pertoken_quant", key, value, key_cache, value_cache,
               k_dequant_scales, v_dequant_scales, slot_mapping, asm_layout,
               QUANT="per_token", SSHAPE="NB, H, BS" if asm_layout else "H, S")


def reshape_and_cache_with_block_quant(key: torch.Tensor, value: torch.Tensor,
                                       key_cache: torch.Tensor, value_cache: torch.Tensor,
                                       k_dequant_scales: torch.Tensor,
                                       v_dequant_scales: torch.Tensor,
                                       slot_mapping: torch.Tensor, asm_layout: bool) -> None:
    """Per (cache block, head) fp8 / int8 quantised KV write of ``key`` / ``value
    [batch, seq, heads, head_size]`` (``slot_mapping [batch * seq]``); scales ``[num_heads,
    num_blocks]`` (asm: ``[num_blocks, num_heads]``). A block whose scale grows has its
    earlier entries re-quantised."""
    func = "reshape_and_cache_with_block_quant"
    A.tensor(func, "key", key, dims=(3, 4))
    A.tensor(func, "value", value, dims=(3, 4))
    _scaled_kv(func, key.reshape(-1, *key.shape[-2:]), value.reshape(-1, *value.shape[-2:]),
               key_cache, value_cache, k_dequant_scales, v_dequant_scales, slot_mapping,
               asm_layout, QUANT="per_block", SSHAPE="NB, H" if asm_layout else "H, NB")


def reshape_and_cache_with_block_quant_for_asm_pa(key: torch.Tensor, value: torch.Tensor,
                                                  key_cache: torch.Tensor,
                                                  value_cache: torch.Tensor,
                                                  k_dequant_scales: torch.Tensor,
                                                  v_dequant_scales: torch.Tensor,
                                                  slot_mapping: torch.Tensor, asm_layout: bool,
                                                  ori_block_size: int = 128) -> None:
    """:func:`reshape_and_cache_with_block_quant` with one scale per ``ori_block_size``
    (128 or 256) cache slots, a super-block of ``ori_block_size / block_size`` cache blocks
    (AITER's asm paged attention): scales ``[num_heads, num_blocks * block_size /
    ori_block_size]`` (asm: transposed). A super-block whose scale grows has its earlier
    entries (across its cache blocks) re-quantised (``cache_write(scale_block=...)``)."""
    func = "reshape_and_cache_with_block_quant_for_asm_pa"
    A.need(ori_block_size in (128, 256), func, f"ori_block_size must be 128 or 256, got "
           f"{ori_block_size!r}")
    A.tensor(func, "key", key, dims=(4,))
    A.tensor(func, "value", value, dims=(4,))
    _scaled_kv(func, key.reshape(-1, *key.shape[-2:]), value.reshape(-1, *value.shape[-2:]),
               key_cache, value_cache, k_dequant_scales, v_dequant_scales, slot_mapping,
               asm_layout, QUANT="per_block", SSHAPE="NSB, H" if asm_layout else "H, NSB",
               XOPT=f", scale_block={int(ori_block_size)}")


def indexer_k_quant_and_cache(k: torch.Tensor, kv_cache: torch.Tensor,
                              slot_mapping: torch.Tensor, quant_block_size: int,
                              scale_fmt: str | None, preshuffle: bool = False) -> None:
    """The sparse-attention indexer's K cache: per token and group of ``quant_block_size``
    columns of ``k [T, head_dim]``, ``s = max(amax, 1e-4) / fp8_max`` (``scale_fmt="ue8m0"``:
    rounded up to a power of two, exactly: AITER's ``exp2f(ceilf(log2f(s)))`` can round a
    value just above a power of two down), codes ``fp8(x * (1 / s))`` RNE saturating.
    ``kv_cache [num_blocks, block_size, head_dim + head_dim / quant_block_size * 4]`` (fp8
    or uint8 bytes) holds per block the codes ``[block_size, head_dim]`` (``preshuffle``:
    16x16 tiles ``[block_size / 16, head_dim / 16, 16, 16]``), then the fp32 scales
    ``[block_size, head_dim / quant_block_size]`` (AITER's HIP and vLLM's kernels; the
    torch reference of AITER's test puts each token's scales right after its codes, the
    same bytes only for ``block_size == 1``)."""
    func = "indexer_k_quant_and_cache"
    A.tensor(func, "k", k, dims=(2,))
    A.tensor(func, "kv_cache", kv_cache, dims=(3,))
    t, hd = k.shape
    qbs = int(quant_block_size)
    A.need(qbs > 0 and hd % qbs == 0, func, f"head_dim {hd} must be divisible by "
           f"quant_block_size, got {quant_block_size!r}")
    g = hd // qbs
    nb, bs, stride = kv_cache.shape
    A.need(stride == hd + 4 * g and hd % 4 == 0, func, f"kv_cache must be [num_blocks, "
           f"block_size, {hd + 4 * g}] (head_dim codes + {g} fp32 scales per token), got "
           f"shape {tuple(kv_cache.shape)}")
    A.need(kv_cache.is_contiguous(), func, "kv_cache must be contiguous")
    if preshuffle:
        A.need(bs % 16 == 0 and hd % 16 == 0 and qbs % 16 == 0, func, f"preshuffle needs "
               f"block_size, head_dim and quant_block_size multiples of 16, got {bs}, {hd}, "
               f"{qbs}")
    raw = kv_cache.view(torch.uint8).view(nb, bs * stride)
    fp8 = kv_cache.dtype if kv_cache.dtype in (torch.float8_e4m3fn,
                                               torch.float8_e4m3fnuz) else dtypes.fp8
    codes, dsl = _cache_dsl(func, "kv_cache", raw[:, :bs * hd].view(fp8), True)
    A.need(dsl.startswith("fp8"), func, f"kv_cache must hold fp8 bytes, got {kv_cache.dtype}")
    b = Binding(func)
    b.subs.update(X=A.float_dsl(func, "k", k), KC=dsl, POW2=str(scale_fmt == "ue8m0").lower())
    if preshuffle:
        b.subs.update(KL="preshuffle", KSHAPE="NB, BSX, G, QX, XB, XV")
        b.kw["kc"] = codes.view(nb, bs // 16, g, qbs // 16, 16, 16)
    else:
        b.kw["kc"] = codes.view(nb, bs, g, qbs)
    b.kw["ks"] = raw[:, bs * hd:].view(torch.float32).view(nb, bs, g)
    b.kw["k"] = (k if k.stride(-1) == 1 else k.contiguous()).view(t, g, qbs)
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = _INDEX.get(slot_mapping.dtype, "")
    A.need(b.subs["I"] != "" and slot_mapping.numel() == t, func, f"slot_mapping must be "
           f"int32/int64 [{t}], got {slot_mapping.dtype} {tuple(slot_mapping.shape)}")
    b.kw["slots"] = slot_mapping
    b.run("indexer_cache", "indexer_k", "hip")


def _qk_norm_rope(b: Binding, qkv, num_heads_q, num_heads_k, num_heads_v, head_dim, eps, qw,
                  kw, cos_sin, rotary_dim: int, is_neox_style: bool,
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
    q, k, v = _qk_norm_rope(b, qkv, num_heads_q, num_heads_k, num_heads_v, head_dim, eps,
                            qw, kw, cos_sin_cache, int(head_dim), is_neox_style,
                            "cos_sin_cache")
    rows, hk, d = q.shape[0], k.shape[1], int(head_dim)
    A.tensor(func, "pos_ids", pos_ids)
    b.subs["PI"] = _INDEX.get(pos_ids.dtype, "")
    A.need(b.subs["PI"] != "" and pos_ids.numel() == rows, func,
           f"pos_ids must be int32/int64 [{rows}], got {pos_ids.dtype} "
           f"{tuple(pos_ids.shape)}")
    b.kw["pos"] = pos_ids.reshape(-1)
    kc, b.subs["KC"] = _cache_dsl(func, "k_cache", k_cache, quantised)
    vc, b.subs["VC"] = _cache_dsl(func, "v_cache", v_cache, quantised)
    A.need(kc.dim() == 5 and vc.is_contiguous(), func, "k_cache must be [num_blocks, heads, "
           "head_dim/x, block_size, x] and v_cache a contiguous cache")
    nb, _, _, bs, x = kc.shape
    vx = 16 // vc.element_size()
    A.need(vc.numel() == nb * hk * bs * d and bs % vx == 0, func,
           f"v_cache must hold [num_blocks={nb}, {hk}, block_size={bs}, {d}] entries")
    b.kw.update(kc=kc, vc=vc.view(nb, hk, bs // vx, d, vx))
    b.subs.update(VECK=str(x), VECV=str(vx))
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = _INDEX.get(slot_mapping.dtype, "i64")
    b.kw["slots"] = slot_mapping
    if quantised:
        _scales(b, k_scale, v_scale)
    out = (b.run("qk_norm_rope_cache_quant", "qk_norm_rope_cache_scaled", "hip") if quantised
           else b.run("qk_norm_rope_cache", "qk_norm_rope_cache", "hip"))
    q.copy_(out["qn"])
    k.copy_(out["kn"])


def fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(
        qkv, qw, kw, cos_sin, positions, num_tokens: int, num_heads_q: int, num_heads_k: int,
        num_heads_v: int, head_size: int, is_neox_style: bool, mrope_section_,
        is_interleaved: bool, eps: float, q_out, k_cache, v_cache, slot_mapping,
        per_tensor_k_scale, per_tensor_v_scale, k_out=None, v_out=None,
        return_kv: bool = False, use_shuffle_layout: bool = True, block_size: int = 0,
        x: int = 0, rotary_dim: int = 0, gemma_norm: bool = False) -> None:
    """mRoPE (Qwen2/3-VL) form of :func:`fused_qk_norm_rope_cache_quant_shuffle`, per token
    of ``qkv [T, (Hq + Hk + Hv) * D]`` (left unchanged): RMSNorm of the q and k heads,
    rotation by ``cos_sin [P, rotary_dim]`` (cos half, sin half; ``rotary_dim=0``: D) at
    ``positions [3, T]`` with ``mrope_section_ = [t, h, w]`` frequencies per row (chunked;
    ``is_interleaved``: Qwen3-VL's interleaving), q written to ``q_out [T, Hq, D]``, k and v
    to the caches at ``slot_mapping``: ``use_shuffle_layout`` ``k_cache [NB, H, D/x,
    block_size, x]``, ``v_cache [NB, H, block_size/x, D, x]``, else ``[slots, H, D]``; a
    cache of qkv's dtype is written as is, an fp8 cache quantised with the per-tensor
    scales (``x * (1 / scale)``, RNE saturating). ``return_kv``: the written k and v also
    in token order in ``k_out`` / ``v_out [T, H, D]``. Norm, weight and rotation in fp32,
    rounded once (AITER's torch reference rounds each step: not an option); ``gemma_norm``
    weighs by ``1 + w``; a position outside the table makes the frequencies that read it
    NaN."""
    func = "fused_qk_norm_mrope_3d_cache_pts_quant_shuffle"
    d = int(head_size)
    rd = int(rotary_dim) or d
    sec = [int(v) for v in mrope_section_]
    A.need(len(sec) == 3 and min(sec) >= 0 and sum(sec) == rd // 2, func,
           f"mrope_section_ must be [t, h, w] summing to rotary_dim / 2 = {rd // 2}, got "
           f"{list(mrope_section_)}")
    b = Binding(func)
    q, k, v = _qk_norm_rope(b, qkv, num_heads_q, num_heads_k, num_heads_v, d, eps, qw, kw,
                            cos_sin.reshape(-1, rd), rd, is_neox_style)
    t, hk = q.shape[0], k.shape[1]
    A.need(int(num_tokens) == t, func, f"num_tokens must be qkv's {t} tokens, got "
           f"{num_tokens}")
    b.subs.update(MROPE="interleaved" if is_interleaved else "chunked", MH=str(sec[1]),
                  MW=str(sec[2]), GEMMA=str(bool(gemma_norm)).lower())
    A.tensor(func, "positions", positions)
    b.subs["PI"] = _INDEX.get(positions.dtype, "")
    A.need(b.subs["PI"] != "" and positions.numel() == 3 * t, func, f"positions must be "
           f"int32/int64 [3, {t}], got {positions.dtype} {tuple(positions.shape)}")
    b.kw["pos"] = positions.reshape(3, t)
    quantised = k_cache.dtype != qkv.dtype         # an fp8 (or uint8 fp8) cache
    kc, b.subs["KC"] = _cache_dsl(func, "k_cache", k_cache, quantised)
    vc, b.subs["VC"] = _cache_dsl(func, "v_cache", v_cache, quantised)
    A.need(kc.dtype == vc.dtype and (not quantised or kc.element_size() == 1 and
                                     kc.dtype != torch.int8), func,
           f"k_cache and v_cache must both have qkv's dtype {qkv.dtype} or an fp8 dtype, got "
           f"{k_cache.dtype} and {v_cache.dtype}")
    b.kw.update(_mrope_caches(func, kc, vc, hk, d, bool(use_shuffle_layout)))
    b.subs.update(_MROPE_LAYOUTS[bool(use_shuffle_layout)],
                  VEC=str(16 // kc.element_size()))
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = _INDEX.get(slot_mapping.dtype, "")
    A.need(b.subs["I"] != "" and slot_mapping.numel() == t, func, f"slot_mapping must be "
           f"int32/int64 [{t}], got {slot_mapping.dtype} {tuple(slot_mapping.shape)}")
    b.kw["slots"] = slot_mapping
    if quantised:
        _scales(b, per_tensor_k_scale.reshape(1).float(), per_tensor_v_scale.reshape(1).float(),
                ("per_tensor_k_scale", "per_tensor_v_scale"))
        out = b.run("qk_norm_mrope_cache_quant", "qk_norm_mrope_cache_static", "hip")
    else:
        out = b.run("qk_norm_mrope_cache", "qk_norm_mrope_cache", "hip")
    _into(func, "q_out", q_out, out["qn"], q.shape)
    if return_kv:
        ko, vo = (out["ko"], out["vo"]) if quantised else (out["kn"], v)
        _into(func, "k_out", k_out, ko.view(k_out.dtype) if k_out is not None else ko, k.shape)
        _into(func, "v_out", v_out, vo.view(v_out.dtype) if v_out is not None else vo, v.shape)


#: AITER's older name of the same operation (without ``rotary_dim``)
fused_qk_norm_mrope_3d_cache_quant_shuffle = fused_qk_norm_mrope_3d_cache_pts_quant_shuffle

#: use_shuffle_layout -> the cache layouts and their dims in qk_norm_mrope_cache*.qp
_MROPE_LAYOUTS = {True: dict(KL="key", KSHAPE="NB, H, DX, BS, XK", VL="value_asm",
                             VSHAPE="NB, H, BSX, D, XV"),
                  False: dict(KL="flash", KSHAPE="S, ONE, H, D", VL="flash",
                              VSHAPE="S, ONE, H, D")}


def _mrope_caches(func: str, kc, vc, hk: int, d: int, shuffle: bool) -> dict:
    """The caches as the pipeline reads them: key / value_asm views of a shuffle-layout
    pair, or ``[slots, H, D]`` caches as flash caches of one-token blocks."""
    if shuffle:
        A.need(kc.dim() == 5 and kc.shape[1] == hk and kc.shape[2] * kc.shape[4] == d, func,
               f"k_cache must be [num_blocks, {hk}, {d}/x, block_size, x], got shape "
               f"{tuple(kc.shape)}")
        nb, _, _, bs, vx = kc.shape
        A.need(vc.numel() == nb * hk * bs * d and bs % vx == 0 and vc.is_contiguous(), func,
               f"v_cache must hold [num_blocks={nb}, {hk}, block_size={bs} / x, {d}, x] "
               f"entries, got shape {tuple(vc.shape)}")
        return {"kc": kc, "vc": vc.view(nb, hk, bs // vx, d, vx)}
    out = {}
    for name, c in (("kc", kc), ("vc", vc)):
        A.need(c.dim() == 3 and tuple(c.shape[1:]) == (hk, d), func,
               f"{'k' if name == 'kc' else 'v'}_cache must be [num_slots, {hk}, {d}], got "
               f"shape {tuple(c.shape)}")
        out[name] = c.unsqueeze(1)
    return out


def _into(func: str, name: str, out, got, shape) -> None:
    """Copy ``got`` into the caller's ``out`` (shape checked)."""
    A.tensor(func, name, out)
    A.need(out.numel() == got.numel(), func, f"{name} must be {list(shape)}, got shape "
           f"{tuple(out.shape)}")
    out.view(got.shape).copy_(got)
