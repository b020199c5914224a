"""``aiter.ops.cache`` on qfuse pipelines (``cache.qp``, ``cache_quant.qp``,
``indexer_cache.qp``, ``qk_norm_rope_cache*.qp``, ``qk_norm_mrope_cache*.qp``): paged
KV-cache writes, plain or quantised, into the caller's caches (in place, as AITER's
kernels). The fused QK-norm + RoPE / mRoPE writes are at AITER's module paths
(``aiter.ops.fused_qk_norm_rope_cache_quant``, ``aiter.ops.fused_qk_norm_mrope_cache_quant``)
and re-exported here.

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

from .. import _args as A
from .. import dtypes
from ._fused import Binding
from ._kv_args import INDEX as _INDEX
from ._kv_args import cache_dsl as _cache_dsl
from ._kv_args import scales as _scales
# the fused QK-norm + RoPE / mRoPE cache writes live at AITER's own module paths; this
# module re-exports them (older qfuse code, and ``aiter.<name>``, reach them here)
from .fused_qk_norm_mrope_cache_quant import (fused_qk_norm_mrope_3d_cache_pts_quant_shuffle,
                                              fused_qk_norm_mrope_3d_cache_quant_shuffle)
from .fused_qk_norm_rope_cache_quant import fused_qk_norm_rope_cache_quant_shuffle

__all__ = ["reshape_and_cache", "reshape_and_cache_with_pertoken_quant",
           "reshape_and_cache_with_block_quant", "reshape_and_cache_with_block_quant_for_asm_pa",
           "indexer_k_quant_and_cache", "fused_qk_norm_rope_cache_quant_shuffle",
           "fused_qk_norm_mrope_3d_cache_pts_quant_shuffle",
           "fused_qk_norm_mrope_3d_cache_quant_shuffle"]

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
