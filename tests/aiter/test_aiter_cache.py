"""qfuse.aiter.ops.cache on both backends against a token-by-token oracle of AITER's KV
cache layouts and quantisers (in-place writes, skipped and out-of-range slots)."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import agree, backends, on, same_bits
from qfuse.aiter.ops import cache as C

FP8 = torch.float8_e4m3fn
T, H, D, NB, BS = 6, 2, 32, 4, 16


def caches(dt, asm=False, fill=0.0):
    x = 16 // torch.empty(0, dtype=dt).element_size()
    kc = torch.full((NB, H, D // x, BS, x), fill).to(dt)
    vc = torch.full((NB, H, BS // x, D, x) if asm else (NB, H, D, BS), fill).to(dt)
    return kc, vc, x


def put(kc, vc, t_slot, h, vals_k, vals_v, x, asm):
    blk, off = divmod(t_slot, BS)
    for d in range(D):
        kc[blk, h, d // x, off, d % x] = vals_k[d]
        if asm:
            vc[blk, h, off // x, d, off % x] = vals_v[d]
        else:
            vc[blk, h, d, off] = vals_v[d]


SLOTS = torch.tensor([3, -1, 19, 63, 70, 12])      # -1 skipped; 70 is past the cache


@backends
@pytest.mark.parametrize("asm", (False, True))
def test_reshape_and_cache_auto(backend, asm):
    k = torch.randn(T, H, D, dtype=torch.bfloat16)
    v = torch.randn(T, H, D, dtype=torch.bfloat16)
    kc, vc, x = caches(torch.bfloat16, asm, fill=7.0)
    wk, wv = kc.clone(), vc.clone()
    on(backend, C.reshape_and_cache, k, v, kc, vc, SLOTS.int(), "auto", asm_layout=asm)
    for t, s in enumerate(SLOTS.tolist()):
        if 0 <= s < NB * BS:
            for h in range(H):
                put(wk, wv, s, h, k[t, h], v[t, h], x, asm)
    same_bits(kc, wk, "key cache")
    same_bits(vc, wv, "value cache")


@backends
def test_reshape_and_cache_fp8_static(backend):
    k = torch.randn(T, H, D, dtype=torch.float16) * 100
    v = torch.randn(T, H, D, dtype=torch.float16)
    kc, vc, x = caches(FP8)
    wk, wv = kc.clone(), vc.clone()
    ks, vs = torch.tensor([0.05]), torch.tensor([2.0])
    on(backend, C.reshape_and_cache, k, v, kc.view(torch.uint8), vc.view(torch.uint8),
       SLOTS, "fp8", ks, vs)
    for t, s in enumerate(SLOTS.tolist()):
        if 0 <= s < NB * BS:
            for h in range(H):
                put(wk, wv, s, h, O.codes(k[t, h].float() * (1 / ks), FP8),
                    O.codes(v[t, h].float() * (1 / vs), FP8), x, False)
    same_bits(kc, wk, "key cache")
    same_bits(vc, wv, "value cache")


@backends
@pytest.mark.parametrize("dt,asm", [(FP8, True), (torch.int8, False)])
def test_reshape_and_cache_with_pertoken_quant(backend, dt, asm):
    k = torch.randn(T, H, D, dtype=torch.bfloat16)
    k[2, 1] = 0.0                                  # a zero head row: scale 0, codes 0
    v = torch.randn(T, H, D, dtype=torch.bfloat16)
    kc, vc, x = caches(dt, asm)
    shape = (NB, H, BS) if asm else (H, NB * BS)
    ks, vs = torch.full(shape, -1.0), torch.full(shape, -1.0)
    wk, wv, wks, wvs = kc.clone(), vc.clone(), ks.clone(), vs.clone()
    on(backend, C.reshape_and_cache_with_pertoken_quant, k, v, kc, vc, ks, vs, SLOTS, asm)
    for t, s in enumerate(SLOTS.tolist()):
        if not 0 <= s < NB * BS:
            continue
        for h in range(H):
            vals = []
            for src, sc in ((k, wks), (v, wvs)):
                a = src[t, h].float()
                scale = a.abs().amax() / O.FMAX[dt]
                vals.append(O.codes(a * (1.0 / scale.clamp(min=1e-12)), dt))
                if asm:
                    sc[s // BS, h, s % BS] = scale
                else:
                    sc[h, s] = scale
            put(wk, wv, s, h, vals[0], vals[1], x, asm)
    same_bits(kc, wk, "key cache")
    same_bits(vc, wv, "value cache")
    same_bits(ks, wks, "key scales")
    same_bits(vs, wvs, "value scales")


@backends
def test_reshape_and_cache_with_block_quant_requantises(backend):
    """Block 1 is filled from offset 0 (scale = its amax), then a second call appends to
    it with a larger amax: the stored entries are re-quantised to the new scale."""
    kc, vc, x = caches(FP8)
    ks, vs = torch.zeros(H, NB), torch.zeros(H, NB)
    k1 = torch.randn(1, 3, H, D, dtype=torch.bfloat16)            # [batch, seq, H, D]
    s1 = torch.tensor([16, 17, 18])
    on(backend, C.reshape_and_cache_with_block_quant, k1, k1, kc, vc, ks, vs, s1, False)
    old = (k1[0].float().abs().amax(dim=(0, 2)).clamp(min=1e-6) / 448.0)   # per head
    same_bits(ks[:, 1], old, "first block scales")
    kc_old = kc.clone()
    k2 = torch.randn(1, 2, H, D, dtype=torch.bfloat16) * 10
    s2 = torch.tensor([19, 20])
    on(backend, C.reshape_and_cache_with_block_quant, k2, k2, kc, vc, ks, vs, s2, False)
    new = k2[0].float().abs().amax(dim=(0, 2)).clamp(min=1e-6) / 448.0
    same_bits(ks[:, 1], torch.maximum(old, new), "grown block scales")
    for h in range(H):
        if new[h] > old[h]:
            q_old = kc_old[1, h, :, 0, :].float()          # offset 0, all of D
            want = O.codes((q_old * old[h]) / new[h], FP8)
            same_bits(kc[1, h, :, 0, :], want, f"re-quantised head {h}")
        want_new = O.codes(k2[0, 0, h].float() * (1.0 / ks[h, 1]), FP8)
        same_bits(kc[1, h, :, 3, :].reshape(-1), want_new, f"new token head {h}")


def rope(x, cos, sin, pos, neox):
    r2 = cos.shape[1]
    c, s = cos[pos][:, None, :].float(), sin[pos][:, None, :].float()
    if neox:
        x1, x2 = x[..., :r2], x[..., r2:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x2 * c + x1 * s], -1).flatten(-2)


@backends
@pytest.mark.parametrize("neox,quant", [(True, "auto"), (False, "fp8_e4m3")])
def test_fused_qk_norm_rope_cache_quant_shuffle(backend, neox, quant):
    hq, hk = 3, 2
    qkv = torch.randn(T, (hq + 2 * hk) * D, dtype=torch.bfloat16)
    orig = qkv.clone()
    qw, kw = torch.randn(D, dtype=torch.bfloat16), torch.randn(D, dtype=torch.bfloat16)
    cs = torch.randn(20, D, dtype=torch.bfloat16)
    pos = torch.randint(0, 20, (T,))
    dt = FP8 if quant != "auto" else torch.bfloat16
    kc, _, x = caches(dt)
    vc = torch.zeros(NB, hk, D, BS).to(dt)
    ks, vs = torch.zeros(NB, hk, BS), torch.zeros(NB, hk, BS)
    slots = torch.tensor([5, 0, 17, 60, -1, 8])
    on(backend, C.fused_qk_norm_rope_cache_quant_shuffle, qkv, hq, hk, hk, D, 1e-6, qw, kw,
       cs, neox, pos, kc, vc, slots, quant, ks, vs)
    rows = orig.view(T, hq + 2 * hk, D)
    cos, sin = cs[:, :D // 2], cs[:, D // 2:]
    wq = rope(O.rms(rows[:, :hq], qw, 1e-6), cos, sin, pos, neox).bfloat16()
    wk = rope(O.rms(rows[:, hq:hq + hk], kw, 1e-6), cos, sin, pos, neox).bfloat16()
    got = qkv.view(T, hq + 2 * hk, D)
    agree({"q": got[:, :hq], "k": got[:, hq:hq + hk]}, {"q": wq, "k": wk}, k=2)
    same_bits(got[:, hq + hk:], rows[:, hq + hk:], "v untouched")
    vx = 16 // vc.element_size()
    v_asm = vc.view(NB, hk, BS // vx, D, vx)
    kr = got[:, hq:hq + hk].float()              # what was written, as rounded in qkv
    for t, s in enumerate(slots.tolist()):
        if s < 0:
            continue
        blk, off = divmod(s, BS)
        for h in range(hk):
            kv, vv = kr[t, h], rows[t, hq + hk + h].float()
            if quant != "auto":
                sk, sv = kv.abs().amax() / 448, vv.abs().amax() / 448
                assert ks[blk, h, off].item() == sk.item()
                kv, vv = O.codes(kv / 1 * (1 / sk.clamp(min=1e-12)), FP8).float(), \
                    O.codes(vv * (1 / sv.clamp(min=1e-12)), FP8).float()
            assert torch.equal(kc[blk, h, :, off, :].reshape(-1).float(), kv.to(dt).float())
            assert torch.equal(v_asm[blk, h, off // vx, :, off % vx].float(), vv.to(dt).float())


@pytest.mark.parametrize("call,exc,match", [
    (lambda: C.reshape_and_cache(torch.randn(2, 1, 8), torch.randn(2, 1, 8),
                                 torch.zeros(1, 1, 1, 4, 8), torch.zeros(1, 1, 8, 4),
                                 torch.tensor([0, 1]), "fp8_e5m2"), NotImplementedError,
     "kv_cache_dtype"),
    (lambda: C.reshape_and_cache(torch.randn(2, 1, 8), torch.randn(2, 1, 8),
                                 torch.zeros(1, 1, 1, 4, 8), torch.zeros(1, 1, 8, 4),
                                 torch.tensor([0., 1.]), "auto"), ValueError, "slot_mapping"),
    (lambda: C.reshape_and_cache(torch.randn(2, 1, 8), torch.randn(2, 1, 8),
                                 torch.zeros(1, 1, 8, 4), torch.zeros(1, 1, 8, 4),
                                 torch.tensor([0, 1]), "auto"), ValueError, "key_cache must be"),
    (lambda: C.reshape_and_cache_with_pertoken_quant(
        torch.randn(2, 1, 8), torch.randn(2, 1, 8), torch.zeros(1, 1, 1, 4, 8),
        torch.zeros(1, 1, 8, 4), torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([0, 1]),
        False), ValueError, "fp8 or int8"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
