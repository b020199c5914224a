"""The scatter roofline of the KV-cache write: a plain Triton kernel that moves the same
bytes as ``kv_key_per_token_fp8`` to the same random slots, with no quantisation math.

A copy's bandwidth is not the bound of a scatter: each token's ``H x D`` bytes land in
``D / X`` runs of ``X = 16`` contiguous bytes (the key layout ``[NB, H, D/X, BS, X]``),
``BS * X`` bytes apart, at a slot read from memory. This kernel does exactly that traffic:
per token it reads the slot (8 B) and the key (``H x D`` bf16), writes one byte per element
(the high byte of the bf16: a stand-in for its fp8 code) into the cache at the slot's block
and offset, and one f32 per (token, head) into ``k_scales[h, slot]`` (the max of the row's
bits, a stand-in for its scale). Same bytes read and written as qfuse's write
(``cases._b_kv``), same addresses; so qfuse's time over this one is its share of the
scatter roofline (issue 16's target: >= 85 %).

``bench.py`` times it on each KV row (``scatter_roofline`` in the JSON, a line under the
table), best of a few launch shapes (heads per program x warps) on a GPU, one in the
interpreter. ``run(inputs)`` does one write in place; ``expected(inputs)`` is the same in
torch (tests/benchmarks/test_kv_scatter.py checks the bytes in the interpreter).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["kv_scatter_kernel", "run", "expected", "best", "CONFIGS"]

# (heads per program, num_warps) tried on a GPU; the first is the interpreter's
CONFIGS = [(4, 4), (1, 1), (1, 2), (2, 2), (2, 4), (4, 2), (8, 4), (8, 8), (16, 8)]


@triton.jit
def kv_scatter_kernel(key_ptr, slots_ptr, cache_ptr, scales_ptr, H, n_slots,
                      D: tl.constexpr, BS: tl.constexpr, X: tl.constexpr, HB: tl.constexpr):
    t = tl.program_id(0)
    h = tl.program_id(1) * HB + tl.arange(0, HB)
    hmask = h < H
    d = tl.arange(0, D)
    slot = tl.load(slots_ptr + t)
    blk = slot // BS
    off = slot % BS
    bits = tl.load(key_ptr + (t * H + h[:, None]) * D + d[None, :], mask=hmask[:, None], other=0)
    byte = ((bits >> 8) & 0xFF).to(tl.uint8)
    dst = (blk * H + h[:, None]).to(tl.int64) * (D * BS) + (d[None, :] // X) * (BS * X) \
        + off * X + d[None, :] % X
    tl.store(cache_ptr + dst, byte, mask=hmask[:, None])
    amax = tl.max(bits & 0x7FFF, axis=1).to(tl.float32)
    tl.store(scales_ptr + h.to(tl.int64) * n_slots + slot, amax, mask=hmask)


def _args(inputs: dict):
    k, cache, scales, slots = inputs["k"], inputs["k_cache"], inputs["k_scales"], inputs["slots"]
    t, h, d = k.shape
    _, _, _, bs, x = cache.shape
    return (k.view(torch.int16), slots, cache.view(torch.uint8), scales, h, scales.shape[1]), \
        dict(D=d, BS=bs, X=x), t, h


def run(inputs: dict, hb: int = CONFIGS[0][0], warps: int = CONFIGS[0][1]):
    """One write of ``inputs`` (the benchmark case's: k, k_cache, k_scales, slots), in
    place; on CPU tensors in the Triton interpreter."""
    args, consts, t, h = _args(inputs)
    grid = (t, triton.cdiv(h, hb))
    if t == 0:
        return
    if args[0].device.type == "cpu":
        from qfuse.backends.triton.triton_adapter import interpret
        interpret(kv_scatter_kernel)[grid](*args, **consts, HB=hb)
    else:
        kv_scatter_kernel[grid](*args, **consts, HB=hb, num_warps=warps)


def expected(inputs: dict) -> tuple:
    """``(cache bytes, scales)`` after one write, in torch (what ``run`` must produce)."""
    k, cache, scales, slots = inputs["k"], inputs["k_cache"], inputs["k_scales"], inputs["slots"]
    t, h, d = k.shape
    _, _, _, bs, x = cache.shape
    bits = k.view(torch.int16).to(torch.int32)
    out = cache.view(torch.uint8).clone()
    sc = scales.clone()
    byte = ((bits >> 8) & 0xFF).to(torch.uint8).view(t, h, d // x, x)
    for i, s in enumerate(slots.tolist()):
        out[s // bs, :, :, s % bs, :] = byte[i]
        sc[:, s] = (bits[i] & 0x7FFF).amax(-1).float()
    return out, sc


def best(timer, inputs: dict, m: int) -> dict:
    """Time every config of CONFIGS (one in the interpreter); the fastest's measurement
    with ``config: [heads per program, warps]``."""
    configs = CONFIGS if timer.cuda else CONFIGS[:1]
    top = None
    for hb, warps in configs:
        r = timer.measure(lambda: run(inputs, hb, warps), m)
        r["config"] = [hb, warps]
        if top is None or r["us"] < top["us"]:
            top = r
    return top
