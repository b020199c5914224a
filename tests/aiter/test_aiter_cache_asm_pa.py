"""reshape_and_cache_with_block_quant_for_asm_pa on both backends against an oracle of
AITER's kernel (one scale per ori_block_size slots spanning several 16-token cache blocks;
a grown super-block scale re-quantises its earlier entries across those blocks)."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import backends, on, same_bits
from qfuse.aiter.ops import cache as C

FP8 = torch.float8_e4m3fn
H, D, BS, NB = 2, 16, 16, 16


def logical_key(kc):
    """[NB * BS, H, D] view of a key cache [NB, H, D/x, BS, x]."""
    return kc.permute(0, 3, 1, 2, 4).reshape(NB * BS, H, D)


def logical_value(vc, asm):
    if asm:                                   # [NB, H, BS/x, D, x]
        return vc.permute(0, 2, 4, 1, 3).reshape(NB * BS, H, D)
    return vc.permute(0, 3, 1, 2).reshape(NB * BS, H, D)


def oracle(x, slots, flat, scales, dt, ori):
    """AITER's per super-block write: new = max(1e-6, amax of its new tokens) / dtype_max;
    first offset > 0 and old < new: entries [0, first) become (q * old) / new, scale new;
    old >= new: keep old; first offset 0: new. Codes x * (1 / scale). scales [H, NSB]."""
    flat, scales = flat.clone(), scales.clone()
    dm = torch.tensor(O.FMAX[dt])
    groups = {}
    for t, s in enumerate(slots.tolist()):
        if 0 <= s < NB * BS:
            groups.setdefault(s // ori, []).append((s % ori, t))
    for b, items in groups.items():
        first = min(o for o, _ in items)
        for h in range(H):
            a = torch.stack([x[t, h].float() for _, t in items]).abs().max()
            new = torch.maximum(a, torch.tensor(1e-6)) / dm
            old = scales[h, b]
            sc = new
            if first > 0:
                if old < new:
                    rows = slice(b * ori, b * ori + first)
                    flat[rows, h] = O.codes((flat[rows, h].float() * old) / new, dt)
                else:
                    sc = old
            scales[h, b] = sc
            for o, t in items:
                flat[b * ori + o, h] = O.codes(x[t, h].float() * (1 / sc), dt)
    return flat, scales


@backends
@pytest.mark.parametrize("asm,ori,dt", [(True, 128, FP8), (False, 256, torch.int8)])
def test_block_quant_for_asm_pa(backend, asm, ori, dt):
    x = 16 // torch.empty(0, dtype=dt).element_size()
    g = torch.Generator().manual_seed(7)
    kc = torch.zeros(NB, H, D // x, BS, x).to(dt)
    vc = torch.zeros((NB, H, BS // x, D, x) if asm else (NB, H, D, BS)).to(dt)
    nsb = NB * BS // ori
    ks, vs = torch.ones(nsb, H) if asm else torch.ones(H, nsb), None
    vs = ks.clone()
    flat_k, flat_v = logical_key(kc).clone(), logical_value(vc, asm).clone()
    wks, wvs = (ks.t() if asm else ks).clone(), (vs.t() if asm else vs).clone()
    # prefill: two sequences of 20 tokens (the second one in super-block 1, or past the
    # cache with ori 256), then a chunk appends 5 larger tokens to each (re-quantising
    # the 20 entries, which span two cache blocks); a padded token; the decode step
    calls = [(torch.arange(20).tolist() + [ori + i for i in range(20)], 1.0),
             ([20 + i for i in range(5)] + [ori + 20 + i for i in range(5)], 8.0),
             ([25, -1], 0.01)]
    for slots, mag in calls:
        slots = torch.tensor(slots)
        k = (torch.randn(1, len(slots), H, D, generator=g) * mag).bfloat16()
        v = (torch.randn(1, len(slots), H, D, generator=g) * mag).bfloat16()
        on(backend, C.reshape_and_cache_with_block_quant_for_asm_pa, k, v, kc, vc, ks, vs,
           slots, asm, ori)
        flat_k, wks = oracle(k[0], slots, flat_k, wks, dt, ori)
        flat_v, wvs = oracle(v[0], slots, flat_v, wvs, dt, ori)
        same_bits(logical_key(kc), flat_k, "key cache")
        same_bits(logical_value(vc, asm), flat_v, "value cache")
        same_bits(ks.t() if asm else ks, wks, "key scales")
        same_bits(vs.t() if asm else vs, wvs, "value scales")
    assert (wks[:, 0] > 1e-3).all()        # the chunk grew super-block 0's scales


def test_asm_pa_arguments():
    k = torch.randn(1, 2, H, D, dtype=torch.bfloat16)
    kc = torch.zeros(NB, H, 1, BS, 16).to(FP8)
    vc = torch.zeros(NB, H, 1, D, 16).to(FP8)
    with pytest.raises(ValueError, match="ori_block_size must be 128 or 256"):
        C.reshape_and_cache_with_block_quant_for_asm_pa(
            k, k, kc, vc, torch.ones(2, H), torch.ones(2, H), torch.tensor([0, 1]), True, 64)
    with pytest.raises(Exception, match="scale_block=128"):
        C.reshape_and_cache_with_block_quant_for_asm_pa(
            k, k, kc, vc, torch.ones(3, H), torch.ones(3, H), torch.tensor([0, 1]), True, 128)
