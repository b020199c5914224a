"""fused_qk_norm_mrope_3d_cache_(pts_)quant_shuffle on both backends against an fp32 oracle
of AITER's torch reference (op_tests/test_fused_qk_norm_mrope_cache_quant.py: RMSNorm,
mRoPE with chunked or interleaved sections, then the caches, plain or per-tensor fp8):
shuffle and flat cache layouts, return_kv, skipped and past-the-end slots, positions
outside the table."""
from __future__ import annotations

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import agree, backends, on, same_bits
from qfuse.aiter.ops import cache as C

FP8 = torch.float8_e4m3fn
T, HQ, HK, D, P = 5, 3, 2, 32, 40
SECTIONS = [6, 5, 5]                               # sums to D / 2


def mrope_ref(x, cos_sin, pos, neox, interleaved, sections=SECTIONS):
    """AITER's reference rotation in fp32: cos_sin[positions], the sections' rows picked;
    dims past the rotary dim pass through."""
    half = cos_sin.shape[1] // 2
    tail = x[..., 2 * half:]
    x = x[..., :2 * half]
    ok = (pos >= 0) & (pos < cos_sin.shape[0])
    cs = torch.where(ok[..., None], cos_sin.float()[pos.clamp(0, cos_sin.shape[0] - 1)],
                     torch.tensor(float("nan")))
    cos, sin = cs[..., :half], cs[..., half:]

    def pick(m):
        if interleaved:
            out = m[0].clone()
            out[..., 1:sections[1] * 3:3] = m[1, ..., 1:sections[1] * 3:3]
            out[..., 2:sections[2] * 3:3] = m[2, ..., 2:sections[2] * 3:3]
            return out
        return torch.cat([p[i] for i, p in enumerate(m.split(sections, -1))], -1)

    c, s = pick(cos)[:, None, :], pick(sin)[:, None, :]
    if neox:
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, tail], -1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.cat([torch.stack([x1 * c - x2 * s, x2 * c + x1 * s], -1).flatten(-2), tail],
                     -1)


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(T, (HQ + 2 * HK) * D, generator=g).bfloat16()
    qw, kw = torch.randn(D, generator=g).bfloat16(), torch.randn(D, generator=g).bfloat16()
    cs = torch.randn(P, D, generator=g).bfloat16()
    pos = torch.randint(0, P, (3, T), generator=g)
    pos[2, 3] = P                                   # past the table: w frequencies NaN
    slots = torch.tensor([5, 33, -1, 17, 64])       # -1 skipped, 64 past a 64-slot cache
    return qkv, qw, kw, cs, pos, slots


def caches(dt, shuffle: bool, nb: int, bs: int, x: int, hk: int = HK, d: int = D) -> tuple:
    """Zeroed k / v caches: the shuffle layouts, or ``[slots, H, D]``."""
    if shuffle:
        return (torch.zeros(nb, hk, d // x, bs, x).to(dt),
                torch.zeros(nb, hk, bs // x, d, x).to(dt))
    return torch.zeros(nb * bs, hk, d).to(dt), torch.zeros(nb * bs, hk, d).to(dt)


def flat(kc, vc, shuffle: bool, nb: int, bs: int, x: int, hk: int = HK, d: int = D) -> tuple:
    """The caches as ``[slots, H, D]``."""
    if not shuffle:
        return kc, vc
    return (kc.permute(0, 3, 1, 2, 4).reshape(-1, hk, d),
            vc.view(nb, hk, bs // x, d, x).permute(0, 2, 4, 1, 3).reshape(-1, hk, d))


def run_and_check(backend, qkv, qw, kw, cs, pos, slots, *, hq, hk, d, sections, neox,
                  interleaved, fp8, shuffle, nb=4, bs=16, ks=0.05, vs=0.02) -> tuple:
    """Run the mRoPE write with return_kv and check q_out, k_out / v_out and the cache
    slots against the oracle; returns ``(q_out, flat k cache)``."""
    t = qkv.shape[0]
    orig = qkv.clone()
    dt = FP8 if fp8 else torch.bfloat16
    x = 16 // torch.empty(0, dtype=dt).element_size()
    kc, vc = caches(dt, shuffle, nb, bs, x, hk, d)
    q_out = torch.empty(t, hq, d, dtype=torch.bfloat16)
    k_out, v_out = torch.empty(t, hk, d, dtype=dt), torch.empty(t, hk, d, dtype=dt)
    ks, vs = torch.tensor(ks), torch.tensor(vs)
    on(backend, C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle, qkv, qw, kw, cs, pos, t,
       hq, hk, hk, d, neox, sections, interleaved, 1e-6, q_out, kc, vc, slots, ks, vs,
       k_out, v_out, True, shuffle, bs, x)
    same_bits(qkv, orig, "qkv unchanged")
    rows = orig.view(t, hq + 2 * hk, d)
    wq = mrope_ref(O.rms(rows[:, :hq], qw, 1e-6), cs, pos, neox, interleaved, sections)
    wk = mrope_ref(O.rms(rows[:, hq:hq + hk], kw, 1e-6), cs, pos, neox, interleaved,
                   sections)
    agree({"q": q_out}, {"q": wq.bfloat16()}, k=2)
    v = rows[:, hq + hk:]
    if fp8:
        agree({"k": k_out.float() * ks}, {"k": O.codes(wk.bfloat16().float() / ks,
                                                        FP8).float() * ks}, k=3)
        same_bits(v_out, O.codes(v.float() / vs, FP8), "v_out")
    else:
        agree({"k": k_out}, {"k": wk.bfloat16()}, k=2)
        same_bits(v_out, v, "v_out")
    flat_k, flat_v = flat(kc, vc, shuffle, nb, bs, x, hk, d)
    for i, s in enumerate(slots.tolist()):
        if 0 <= s < nb * bs:
            same_bits(flat_k[s], k_out[i], f"k cache slot {s}")
            same_bits(flat_v[s], v_out[i], f"v cache slot {s}")
    return q_out, flat_k


@backends
@pytest.mark.parametrize("neox,interleaved,fp8,shuffle", [
    (True, False, False, True), (False, True, True, True), (True, True, True, False),
    (False, False, False, False)])
def test_fused_qk_norm_mrope(backend, neox, interleaved, fp8, shuffle):
    qkv, qw, kw, cs, pos, slots = setup()
    q_out, flat_k = run_and_check(backend, qkv, qw, kw, cs, pos, slots, hq=HQ, hk=HK, d=D,
                                  sections=SECTIONS, neox=neox, interleaved=interleaved,
                                  fp8=fp8, shuffle=shuffle)
    assert q_out[3].isnan().any() and not q_out[0].isnan().any()
    assert not flat_k[18:33].float().any()          # only the written slots change


@backends
@pytest.mark.parametrize("shuffle", [True, False])
def test_fp8_codes_divide_by_the_scale(backend, shuffle):
    """AITER's mRoPE kernel quantises fp8(x / scale) (a true division, then the clipping
    cast), not x * (1 / scale): with scale 0.03 the bf16 values 0.046875 and 0.0234375
    give another code by the two rules. v is written as given, so its codes are exact;
    k (normalised and rotated) follows the same option."""
    qkv, qw, kw, cs, pos, slots = setup(seed=1)
    rows = qkv.view(T, HQ + 2 * HK, D)
    v = rows[:, HQ + HK:]
    v[:, :, 0::4] = 0.046875
    v[:, :, 1::4] = -0.0234375
    v[:, :, 2] = 100.0                              # saturates at 448
    nb, bs, x = 4, 16, 16
    kc, vc = caches(FP8, shuffle, nb, bs, x)
    q_out = torch.empty(T, HQ, D, dtype=torch.bfloat16)
    k_out, v_out = torch.empty(T, HK, D, dtype=FP8), torch.empty(T, HK, D, dtype=FP8)
    vs = torch.tensor(0.03)
    on(backend, C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle, qkv, qw, kw, cs, pos, T,
       HQ, HK, HK, D, True, SECTIONS, False, 1e-6, q_out, kc, vc, slots, torch.tensor(0.05),
       vs, k_out, v_out, True, shuffle, bs, x)
    want = O.codes(v.float() / vs, FP8)
    assert not torch.equal(want.view(torch.uint8),
                           O.codes(v.float() * (1 / vs), FP8).view(torch.uint8))
    same_bits(v_out, want, "v_out")
    flat_v = flat(kc, vc, shuffle, nb, bs, x)[1]
    for t, s in enumerate(slots.tolist()):
        if 0 <= s < nb * bs:
            same_bits(flat_v[s], want[t], f"v cache slot {s}")


@backends
def test_partial_rotary_dim(backend):
    """rotary_dim 16 of head size 32 (cos_sin [P, 16], sections [4, 2, 2]): the last 16
    dims of q and k pass through the norm unrotated; gemma_norm weighs by 1 + w."""
    qkv, qw, kw, _, pos, slots = setup(seed=3)
    cs = torch.randn(P, 16).bfloat16()
    q_out = torch.empty(T, HQ, D, dtype=torch.bfloat16)
    kc = vc = torch.zeros(64, HK, D, dtype=torch.bfloat16)
    k_out, v_out = torch.empty(T, HK, D, dtype=torch.bfloat16), torch.empty(T, HK, D,
                                                                            dtype=torch.bfloat16)
    on(backend, C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle, qkv, qw, kw, cs, pos, T,
       HQ, HK, HK, D, True, [4, 2, 2], True, 1e-6, q_out, kc, vc, slots, torch.tensor(1.0),
       torch.tensor(1.0), k_out, v_out, True, False, 0, 0, 16, gemma_norm=True)
    rows = qkv.view(T, HQ + 2 * HK, D)
    gq, gk = qw.float() + 1, kw.float() + 1                      # gemma_norm: 1 + w
    wq = mrope_ref(O.rms(rows[:, :HQ], gq, 1e-6), cs, pos, True, True, [4, 2, 2])
    wk = mrope_ref(O.rms(rows[:, HQ:HQ + HK], gk, 1e-6), cs, pos, True, True, [4, 2, 2])
    agree({"q": q_out, "k": k_out}, {"q": wq.bfloat16(), "k": wk.bfloat16()}, k=2)
    assert not q_out[3, :, 16:].isnan().any()        # the tail ignores the bad position


def test_aiter_module_paths():
    """AITER's own modules (aiter/ops/fused_qk_norm_mrope_cache_quant.py,
    aiter/ops/fused_qk_norm_rope_cache_quant.py) serve the functions (``import aiter``
    reaches ``qfuse.aiter.<path>`` for any path, test_guide_examples.py checks the alias);
    aiter.ops.cache and aiter itself re-export the same objects."""
    import importlib

    import qfuse.aiter as aiter
    mrope = importlib.import_module("qfuse.aiter.ops.fused_qk_norm_mrope_cache_quant")
    rope = importlib.import_module("qfuse.aiter.ops.fused_qk_norm_rope_cache_quant")
    for name in ("fused_qk_norm_mrope_3d_cache_pts_quant_shuffle",
                 "fused_qk_norm_mrope_3d_cache_quant_shuffle"):
        assert getattr(mrope, name) is getattr(C, name) is getattr(aiter, name)
    assert rope.fused_qk_norm_rope_cache_quant_shuffle is \
        C.fused_qk_norm_rope_cache_quant_shuffle is aiter.fused_qk_norm_rope_cache_quant_shuffle
    assert mrope.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle.__module__ == \
        "qfuse.aiter.ops.fused_qk_norm_mrope_cache_quant"


def test_scale_as_float_or_one_element_tensor():
    """AITER's older signature passes the per-tensor scales as floats: the same codes; a
    scale of several elements or an integer tensor is an error naming it."""
    qkv, qw, kw, cs, pos, slots = setup(seed=2)
    got = []
    for ks, vs in ((0.05, 0.03), (torch.tensor([0.05]), torch.tensor(0.03))):
        kc, vc = torch.zeros(64, HK, D).to(FP8), torch.zeros(64, HK, D).to(FP8)
        q_out = torch.empty(T, HQ, D, dtype=torch.bfloat16)
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(
            qkv, qw, kw, cs, pos, T, HQ, HK, HK, D, True, SECTIONS, False, 1e-6, q_out, kc,
            vc, slots, ks, vs, use_shuffle_layout=False)
        got.append((kc, vc))
    same_bits(got[0][0], got[1][0], "k cache")
    same_bits(got[0][1], got[1][1], "v cache")
    kc, vc = torch.zeros(64, HK, D).to(FP8), torch.zeros(64, HK, D).to(FP8)
    q_out = torch.empty(T, HQ, D, dtype=torch.bfloat16)
    for bad in (torch.tensor([0.1, 0.2]), torch.tensor([1])):
        with pytest.raises(ValueError, match="per_tensor_v_scale must be a float or a "
                                             "one-element float tensor"):
            C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(
                qkv, qw, kw, cs, pos, T, HQ, HK, HK, D, True, SECTIONS, False, 1e-6, q_out,
                kc, vc, slots, 0.05, bad, use_shuffle_layout=False)


def test_old_name_and_arguments():
    assert C.fused_qk_norm_mrope_3d_cache_quant_shuffle is \
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle
    qkv, qw, kw, cs, pos, slots = setup()
    kc = vc = torch.zeros(64, HK, D, dtype=torch.bfloat16)
    q_out = torch.empty(T, HQ, D, dtype=torch.bfloat16)
    args = (qkv, qw, kw, cs, pos, T, HQ, HK, HK, D, True, [6, 5, 4], False, 1e-6, q_out, kc,
            vc, slots, torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="mrope_section_ must be"):
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(*args, use_shuffle_layout=False)
    args = args[:11] + (SECTIONS,) + args[12:]
    with pytest.raises(ValueError, match="positions must be"):
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(
            *args[:4], pos[:2], *args[5:], use_shuffle_layout=False)
    with pytest.raises(ValueError, match="k_cache must be"):
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(*args, use_shuffle_layout=True)
    i8 = torch.zeros(64, HK, D, dtype=torch.int8)
    with pytest.raises(ValueError, match="or an fp8 dtype"):
        C.fused_qk_norm_mrope_3d_cache_pts_quant_shuffle(*args[:15], i8, i8, *args[17:],
                                                         use_shuffle_layout=False)
