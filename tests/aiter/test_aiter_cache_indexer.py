"""indexer_k_quant_and_cache on both backends against an oracle of AITER's HIP kernel:
per (token, quant group) fp8 scales max(amax, 1e-4) / fp8_max (ue8m0: the next power of
two), codes and fp32 scales in each cache block's two regions, plain or 16x16 preshuffled
codes; skipped, past-the-end and duplicate slots; zero, tiny, NaN and Inf groups."""
from __future__ import annotations

import math

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import backends, on, same_bits
from qfuse.aiter.ops import cache as C

FP8 = torch.float8_e4m3fn


def pow2_up(s: float) -> float:
    """The smallest power of two >= s (exact, in float64)."""
    if s == 0 or not math.isfinite(s):
        return s
    m, e = math.frexp(s)                     # s = m * 2^e, 0.5 <= m < 1
    return math.ldexp(1.0, e - 1) if m == 0.5 else math.ldexp(1.0, e)


def oracle(k, cache, slots, qbs, ue8m0, preshuffle):
    """AITER's kernel on a [NB, BS, stride] uint8 cache (a copy)."""
    cache = cache.view(torch.uint8).clone()
    nb, bs, stride = cache.shape
    t, hd = k.shape
    g = hd // qbs
    dt = FP8
    flat = cache.view(nb, bs * stride)
    last = {}
    for i, s in enumerate(slots.tolist()):
        if 0 <= s < nb * bs:
            last[s] = i
    for s, i in last.items():
        blk, off = divmod(s, bs)
        for j in range(g):
            x = k[i, j * qbs:(j + 1) * qbs].float()
            amax = x.abs().max()
            sc = torch.maximum(amax, torch.tensor(1e-4)) / O.FMAX[dt]
            if ue8m0:
                sc = torch.tensor(pow2_up(sc.item()), dtype=torch.float32)
            q = O.codes(x * (1 / sc), dt).view(torch.uint8)
            for c in range(qbs):
                col = j * qbs + c
                if preshuffle:
                    at = (off // 16) * 16 * hd + (col // 16) * 256 + (off % 16) * 16 + col % 16
                else:
                    at = off * hd + col
                flat[blk, at] = q[c]
            sb = flat[blk, bs * hd:].view(torch.float32).view(bs, g)
            sb[off, j] = sc
    return cache


def same_cache(got, want, hd, what="kv_cache"):
    """Codes by bytes, scales as fp32 (a NaN scale matches NaN whatever its payload)."""
    nb, bs, stride = want.shape
    g, w = got.view(torch.uint8).view(nb, -1), want.view(nb, -1)
    same_bits(g[:, :bs * hd], w[:, :bs * hd], what + " codes")
    same_bits(g[:, bs * hd:].view(torch.float32), w[:, bs * hd:].view(torch.float32),
              what + " scales")


def inputs(t=7, hd=64, qbs=32, nb=3, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(t, hd, generator=g) * 3
    k[1, :qbs] = 0.0                            # a zero group: scale 1e-4 / 448
    k[2, qbs:] *= 1e-30                         # tiny: floored too
    k[3, 5] = float("nan")
    k[4, qbs + 1] = float("inf")
    k[5, :] *= 300.0
    slots = torch.tensor([3, 17, -1, 40, 47, 100, 3])[:t]   # 3 twice: the later wins
    cache = torch.randint(0, 255, (nb, bs, hd + 4 * (hd // qbs)), generator=g,
                          dtype=torch.uint8)
    return k.bfloat16(), cache, slots


@backends
@pytest.mark.parametrize("ue8m0,preshuffle", [(True, False), (False, False), (True, True)])
def test_indexer_k_quant_and_cache(backend, ue8m0, preshuffle):
    k, cache, slots = inputs()
    want = oracle(k, cache, slots, 32, ue8m0, preshuffle)
    kv = cache.clone().view(FP8)
    on(backend, C.indexer_k_quant_and_cache, k, kv, slots, 32, "ue8m0" if ue8m0 else "",
       preshuffle)
    same_cache(kv, want, 64)


@backends
def test_indexer_aiter_shapes(backend):
    """AITER's test: head_dim 128, quant_block_size 128, block_size 1 and 16, uint8 bytes."""
    for bs in (1, 16):
        k = torch.randn(20, 128, dtype=torch.bfloat16)
        slots = torch.arange(20)
        nb = -(-20 // bs)
        cache = torch.zeros(nb, bs, 132, dtype=torch.uint8)
        want = oracle(k, cache, slots, 128, True, False)
        on(backend, C.indexer_k_quant_and_cache, k, cache, slots, 128, "ue8m0")
        same_cache(cache, want, 128, f"kv_cache bs={bs}")


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(2, 64), torch.zeros(1, 16, 68, dtype=torch.uint8), torch.tensor([0, 1]),
      48, "ue8m0"), "divisible by quant_block_size"),
    ((torch.zeros(2, 64), torch.zeros(1, 16, 64, dtype=torch.uint8), torch.tensor([0, 1]),
      32, "ue8m0"), r"kv_cache must be \[num_blocks, block_size, 72\]"),
    ((torch.zeros(2, 64), torch.zeros(1, 8, 72, dtype=torch.uint8), torch.tensor([0, 1]),
      32, "ue8m0", True), "preshuffle needs"),
    ((torch.zeros(2, 64), torch.zeros(1, 16, 72, dtype=torch.uint8), torch.tensor([0.0, 1]),
      32, ""), "slot_mapping"),
])
def test_indexer_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        C.indexer_k_quant_and_cache(*args)
