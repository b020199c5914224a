"""``cache_write``: element positions for every layout (explicit loops), quantised writes
(static, per_token, per_block with re-quantisation), slot edge cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from qfuse.backends.reference.stages import call_stage, run_cache_write
from qfuse.errors import InputError
from ref_oracle import F32, oracle_fp8

rng = np.random.default_rng(3)
NB, BS, H, D = 3, 4, 2, 8
SLOTS = [5, -1, 0, 11, 6, -3]                       # two skipped tokens, blocks 1, 0, 2, 1
T = len(SLOTS)


def position(layout, blk, off, h, d, x):
    """The doc's table, written out."""
    if layout == "key":
        return (blk, h, d // x, off, d % x)
    if layout == "value":
        return (blk, h, d, off)
    if layout == "value_asm":
        return (blk, h, off // x, d, off % x)
    return (blk, off, h, d)


def cache_shape(layout, x):
    if layout == "key":
        return (NB, H, D // x, BS, x)
    if layout == "value_asm":
        return (NB, H, BS // x, D, x)
    return (NB, H, D, BS) if layout == "value" else (NB, BS, H, D)


@pytest.mark.parametrize("layout,x", [("key", 4), ("key", 2), ("value", None),
                                      ("value_asm", 2), ("value_asm", 4), ("flash", None)])
def test_positions_every_layout(layout, x):
    xs = torch.arange(1, T * H * D + 1, dtype=torch.float32).reshape(T, H, D)
    cache = torch.full(cache_shape(layout, x), -7.0)
    before = cache.clone()
    (out,) = run_cache_write(xs, cache, torch.tensor(SLOTS), layout=layout, vec_width=x)
    assert torch.equal(cache, before)                     # not modified in place
    want = before.clone()
    for t, slot in enumerate(SLOTS):
        if slot < 0:
            continue
        for h in range(H):
            for d in range(D):
                want[position(layout, slot // BS, slot % BS, h, d, x)] = xs[t, h, d]
    assert torch.equal(out, want)
    assert (out == -7.0).sum().item() == out.numel() - 4 * H * D


def test_bf16_key_cache_default_x_and_rounding():
    xs = torch.tensor(rng.standard_normal((2, 1, 16)), dtype=torch.float32)
    cache = torch.zeros(2, 1, 2, 4, 8, dtype=torch.bfloat16)   # X = 16 / 2 bytes = 8
    (out,) = call_stage("cache_write", {"x": xs, "cache": cache, "slots": torch.tensor([6, 1]),
                                        "scales": None},
                        {"layout": "key", "quant": "none", "scale_layout": "default",
                         "dtype_max": 0.0, "mode": "trunc", "vec": 8})
    assert out.dtype == torch.bfloat16
    for t, slot in enumerate([6, 1]):
        for d in range(16):
            assert out[slot // 4, 0, d // 8, slot % 4, d % 8].item() == \
                xs[t, 0, d].to(torch.bfloat16).item()


def test_duplicate_slot_keeps_later_token_and_slots_past_the_cache_are_skipped():
    xs = torch.tensor([[[1.0]], [[2.0]], [[3.0]]])
    cache = torch.zeros(1, 4, 1, 1)
    (out,) = run_cache_write(xs, cache, torch.tensor([2, 2, 0]), layout="flash")
    assert out.reshape(-1).tolist() == [3.0, 0.0, 2.0, 0.0]
    # a slot past the cache is skipped like padding (index_check=raise reports it)
    (out,) = run_cache_write(xs, cache, torch.tensor([0, 4, -1]), layout="flash")
    assert out.reshape(-1).tolist() == [1.0, 0.0, 0.0, 0.0]
    # ... and a token skipped so loses nothing: the duplicate of slot 1 past it still wins
    (out,) = run_cache_write(xs, cache, torch.tensor([1, 1, 99]), layout="flash")
    assert out.reshape(-1).tolist() == [0.0, 2.0, 0.0, 0.0]
    with pytest.raises(InputError, match=r"must have shape \(1, 1\)"):
        run_cache_write(xs, cache.to(torch.int8), torch.tensor([0, 1, 2]), torch.ones(1, 2),
                        layout="flash",
                        quant="per_block", dtype_max=448.0)
    with pytest.raises(InputError, match="vector width"):
        run_cache_write(torch.zeros(1, 1, 8), torch.zeros(1, 1, 2, 4, 4), torch.tensor([0]),
                        layout="key", vec_width=8)


def fp8_bytes(v):
    return [oracle_fp8(float(e), "fp8_e4m3fn", 448.0, True) for e in np.ravel(v)]


def test_static_fp8_flash():
    xs = (rng.standard_normal((T, H, D)) * 30).astype(np.float32)
    cache = torch.zeros(NB, BS, H, D, dtype=torch.float8_e4m3fn)
    s = np.float32(0.07)
    (out,) = run_cache_write(torch.from_numpy(xs), cache, torch.tensor(SLOTS), torch.tensor([s]),
                             layout="flash", quant="static")
    ob = out.view(torch.uint8)
    for t, slot in enumerate(SLOTS):
        if slot >= 0:
            v = xs[t] * (F32(1) / s)
            assert ob[slot // BS, slot % BS].reshape(-1).tolist() == fp8_bytes(v)


@pytest.mark.parametrize("scale_layout", ["default", "asm"])
@pytest.mark.parametrize("cdt", ["fp8", "i8"])
def test_per_token(scale_layout, cdt):
    xs = (rng.standard_normal((T, H, D)) * 5).astype(np.float32)
    xs[2, 1] = 0                                              # a zero head-row
    tdt = torch.float8_e4m3fn if cdt == "fp8" else torch.int8
    dm = F32(448) if cdt == "fp8" else F32(127)
    cache = torch.zeros(NB, H, BS, D, 1, dtype=tdt)           # value_asm with X = 1
    sshape = (H, NB * BS) if scale_layout == "default" else (NB, H, BS)
    scales = torch.full(sshape, -1.0)
    out, sc = run_cache_write(torch.from_numpy(xs), cache, torch.tensor(SLOTS), scales,
                              layout="value_asm", quant="per_token", scale_layout=scale_layout,
                              dtype_max=float(dm))
    assert sc.shape == sshape and (scales == -1.0).all()
    for t, slot in enumerate(SLOTS):
        if slot < 0:
            continue
        blk, off = divmod(slot, BS)
        for h in range(H):
            s = F32(np.max(np.abs(xs[t, h]))) / dm
            got_s = sc[h, slot] if scale_layout == "default" else sc[blk, h, off]
            assert got_s.item() == s
            v = xs[t, h] * (F32(1) / max(s, F32(1e-12)))
            codes = out[blk, h, off, :, 0]
            if cdt == "fp8":
                assert codes.view(torch.uint8).tolist() == fp8_bytes(v)
            else:
                assert codes.tolist() == np.clip(np.trunc(v), -127, 127).astype(int).tolist()
    assert (sc == -1.0).sum().item() == sc.numel() - 4 * H        # other slots untouched


def test_per_block_requantisation_int8():
    """Block 0 already holds 2 tokens (offsets 0, 1) at old scales [0.5, 0.3] per head.
    New tokens at offsets 2, 3: head 0's new scale 1.0 > 0.5 re-quantises offsets 0..1;
    head 1's new scale 0.2/127 < 0.3 keeps the old scale and the old entries."""
    bs, d = 4, 4
    cache = torch.zeros(2, bs, 2, d, dtype=torch.int8)        # flash [NB, BS, H, D]
    cache[0, 0] = torch.tensor([[100, -50, 7, 0], [20, 21, -22, 23]], dtype=torch.int8)
    cache[0, 1] = torch.tensor([[-127, 3, 1, 2], [9, 8, 7, 6]], dtype=torch.int8)
    cache[1, 0] = 55                                          # block 1: fresh write at off 0
    old = torch.tensor([[0.5, 0.3], [9.0, 9.0]]).T.contiguous()   # default layout [H, NB]
    xs = np.zeros((3, 2, d), dtype=np.float32)
    xs[0, 0] = [127.0, -63.5, 10.0, 1.0]                      # head 0 amax 127 -> new 1.0
    xs[0, 1] = [0.1, 0.2, -0.05, 0.0]                         # head 1 amax 0.2 -> new < old 0.3
    xs[1, 0] = [3.0, 2.0, 1.0, 0.0]
    xs[1, 1] = [0.0, 0.0, 0.0, 0.0]
    xs[2] = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]      # block 1, head 1 zero -> 1e-6/127
    slots = torch.tensor([2, 3, 4])
    out, sc = run_cache_write(torch.from_numpy(xs), cache, slots, old, layout="flash",
                              quant="per_block", dtype_max=127.0, mode="rne")
    dm = F32(127)
    new0 = F32(127) / dm
    new_b1 = [F32(4) / dm, F32(1e-6) / dm]
    assert sc.tolist() == [[float(new0), float(new_b1[0])], [0.30000001192092896, float(new_b1[1])]]
    # head 0 of block 0 grew: offsets 0, 1 re-quantised with old/new = 0.5
    ratio = F32(0.5) / new0
    for off in range(2):
        q_old = cache[0, off, 0].numpy().astype(np.float32)
        assert out[0, off, 0].tolist() == np.clip(np.round(q_old * ratio), -127, 127).astype(int).tolist()
    # head 1 did not grow (0.2/127 < 0.3): old entries untouched, new tokens use 0.3
    assert torch.equal(out[0, :2, 1], cache[0, :2, 1])
    inv1 = F32(1) / F32(0.3)
    assert out[0, 2, 1].tolist() == np.round(xs[0, 1] * inv1).astype(int).tolist()
    assert out[0, 2, 0].tolist() == np.round(xs[0, 0] * (F32(1) / new0)).astype(int).tolist()
    # block 1 written at offset 0: scale is new, later offsets untouched
    assert out[1, 0, 0].tolist() == np.round(xs[2, 0] * (F32(1) / new_b1[0])).astype(int).tolist()
    assert out[1, 0, 1].tolist() == [0, 0, 0, 0]
    assert torch.equal(out[1, 1:], cache[1, 1:])


@pytest.mark.parametrize("scale_layout", ["default", "asm"])
def test_per_block_fp8_key_layout(scale_layout):
    xs = (rng.standard_normal((T, H, D)) * 3).astype(np.float32)
    x = 4
    cache = torch.zeros(NB, H, D // x, BS, x, dtype=torch.float8_e4m3fn)
    scales = torch.full((H, NB) if scale_layout == "default" else (NB, H), 100.0)
    out, sc = run_cache_write(torch.from_numpy(xs), cache, torch.tensor(SLOTS), scales,
                              layout="key", quant="per_block", scale_layout=scale_layout,
                              dtype_max=448.0, vec_width=x)
    get = (lambda h, b: sc[h, b].item()) if scale_layout == "default" else (lambda h, b: sc[b, h].item())
    by_block = {}
    for t, slot in enumerate(SLOTS):
        if slot >= 0:
            by_block.setdefault(slot // BS, []).append(t)
    for b, toks in by_block.items():
        off_first = min(SLOTS[t] % BS for t in toks)
        for h in range(H):
            new = max(F32(1e-6), F32(np.max(np.abs(xs[toks, h])))) / F32(448)
            want = new if off_first == 0 else max(F32(100.0), new)   # old 100 >= new: keep old
            assert get(h, b) == want, (b, h)
            for t in toks:
                off = SLOTS[t] % BS
                v = xs[t, h] * (F32(1) / F32(want))
                got = [out[b, h, dd // x, off, dd % x].view(torch.uint8).item() for dd in range(D)]
                assert got == fp8_bytes(v)
