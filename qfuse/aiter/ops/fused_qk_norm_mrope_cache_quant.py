"""``aiter.ops.fused_qk_norm_mrope_cache_quant`` (AITER's module of the mRoPE form of the
fused QK RMSNorm + rotary + KV-cache write, Qwen2/3-VL; ``qk_norm_mrope_cache*.qp``); also
re-exported by ``aiter.ops.cache``. Backend: hip."""
from __future__ import annotations

import torch

from .. import _args as A
from ._fused import Binding
from ._kv_args import INDEX, cache_dsl, into, scales
from .fused_qk_norm_rope_cache_quant import bind_qk_norm_rope

__all__ = ["fused_qk_norm_mrope_3d_cache_pts_quant_shuffle",
           "fused_qk_norm_mrope_3d_cache_quant_shuffle"]


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
    scales (a float or a one-element tensor): ``fp8(x / scale)``, a true fp32 division,
    RNE, saturating, as AITER's kernel (``convert_to``: ``float(x) / scale``, then the
    clipping fp8 cast) and its test's reference (``per_tensor_quant``) compute it.
    ``return_kv``: the written k and v also in token order in ``k_out`` / ``v_out [T, H,
    D]``. Norm, weight and rotation in fp32,
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
    q, k, v = bind_qk_norm_rope(b, qkv, num_heads_q, num_heads_k, num_heads_v, d, eps, qw,
                                kw, cos_sin.reshape(-1, rd), rd, is_neox_style)
    t, hk = q.shape[0], k.shape[1]
    A.need(int(num_tokens) == t, func, f"num_tokens must be qkv's {t} tokens, got "
           f"{num_tokens}")
    b.subs.update(MROPE="interleaved" if is_interleaved else "chunked", MH=str(sec[1]),
                  MW=str(sec[2]), GEMMA=str(bool(gemma_norm)).lower())
    A.tensor(func, "positions", positions)
    b.subs["PI"] = INDEX.get(positions.dtype, "")
    A.need(b.subs["PI"] != "" and positions.numel() == 3 * t, func, f"positions must be "
           f"int32/int64 [3, {t}], got {positions.dtype} {tuple(positions.shape)}")
    b.kw["pos"] = positions.reshape(3, t)
    quantised = k_cache.dtype != qkv.dtype         # an fp8 (or uint8 fp8) cache
    kc, b.subs["KC"] = cache_dsl(func, "k_cache", k_cache, quantised)
    vc, b.subs["VC"] = cache_dsl(func, "v_cache", v_cache, quantised)
    A.need(kc.dtype == vc.dtype and (not quantised or kc.element_size() == 1 and
                                     kc.dtype != torch.int8), func,
           f"k_cache and v_cache must both have qkv's dtype {qkv.dtype} or an fp8 dtype, got "
           f"{k_cache.dtype} and {v_cache.dtype}")
    b.kw.update(_mrope_caches(func, kc, vc, hk, d, bool(use_shuffle_layout)))
    b.subs.update(_MROPE_LAYOUTS[bool(use_shuffle_layout)],
                  VEC=str(16 // kc.element_size()))
    A.tensor(func, "slot_mapping", slot_mapping, dims=(1,))
    b.subs["I"] = INDEX.get(slot_mapping.dtype, "")
    A.need(b.subs["I"] != "" and slot_mapping.numel() == t, func, f"slot_mapping must be "
           f"int32/int64 [{t}], got {slot_mapping.dtype} {tuple(slot_mapping.shape)}")
    b.kw["slots"] = slot_mapping
    if quantised:
        scales(b, _one_scale(func, "per_tensor_k_scale", per_tensor_k_scale, qkv.device),
               _one_scale(func, "per_tensor_v_scale", per_tensor_v_scale, qkv.device),
               ("per_tensor_k_scale", "per_tensor_v_scale"))
        out = b.run("qk_norm_mrope_cache_quant", "qk_norm_mrope_cache_static", "hip")
    else:
        out = b.run("qk_norm_mrope_cache", "qk_norm_mrope_cache", "hip")
    into(func, "q_out", q_out, out["qn"], q.shape)
    if return_kv:
        ko, vo = (out["ko"], out["vo"]) if quantised else (out["kn"], v)
        into(func, "k_out", k_out, ko.view(k_out.dtype) if k_out is not None else ko, k.shape)
        into(func, "v_out", v_out, vo.view(v_out.dtype) if v_out is not None else vo, v.shape)


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


def _one_scale(func: str, name: str, scale, device) -> torch.Tensor:
    """A per-tensor scale as the pipeline's ``f32[1]``: AITER passes a one-element tensor
    (older versions a float)."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return torch.tensor([float(scale)], dtype=torch.float32, device=device)
    A.tensor(func, name, scale)
    A.need(scale.numel() == 1 and scale.is_floating_point(), func, f"{name} must be a float "
           f"or a one-element float tensor, got {scale.dtype} of shape {tuple(scale.shape)}")
    return scale.reshape(1).to(torch.float32)
