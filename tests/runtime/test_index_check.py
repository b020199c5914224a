"""Hostile shapes and indices on both CPU backends (reference, Triton in the interpreter).

Every index that comes from data has a defined result that both backends share, no value
of it makes a kernel touch memory outside its tensors (canary bytes around the cache stay
put), every shape relation a kernel relies on is checked before launch, and
``index_check="raise"`` reports the indices whose defined result hides a caller's error.
"""
from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfuse.backends.triton.codegen.slot_claims import SCAN_TOKENS
from qfuse.dsl import load_file
from qfuse.errors import InputError
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

from pathlib import Path

BACKENDS = ("reference", "triton")
KV = load_file(str(Path(__file__).resolve().parents[2] / "examples" / "kvcache.qp"))
HOSTILE = load_file(str(Path(__file__).resolve().parent / "hostile.qp"))


def bits(t):
    return t.view(torch.uint8) if t.element_size() == 1 else \
        t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def same(a, b) -> bool:
    """Identical bits, NaN matching NaN whatever its payload."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = (a.isnan() & b.isnan()) if a.dtype.is_floating_point and a.element_size() > 1 \
        else torch.zeros(a.shape, dtype=torch.bool)
    return bool(((bits(a) == bits(b)) | nan).all())


def clone(inputs):
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


# the Triton side runs in the interpreter, and on the GPU where there is one
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def to(inputs, device):
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def triton_pipeline(tp, device="cpu"):
    """The Triton callable of ``tp``: compiled here, or on a GPU box without the compiler
    from the bundle ``$QFUSE_TEST_BUNDLE`` (built on the CPU from kvcache.qp and
    hostile.qp: ``qfuse build ... --target cuda:sm_90``)."""
    bundle = os.environ.get("QFUSE_TEST_BUNDLE")
    if device != "cpu" and bundle:
        import qfuse
        return qfuse.load(bundle)[tp.name]
    return QuantPipeline(tp, backend="triton")


def run_both(tp, inputs, device="cpu"):
    """``(reference on the CPU, Triton on device)`` results, on the CPU."""
    ref = QuantPipeline(tp, backend="reference")(**clone(inputs), _as_dict=True)
    tri = triton_pipeline(tp, device)(**to(clone(inputs), device), _as_dict=True)
    return ref, {k: v.cpu() for k, v in tri.items()}


def assert_same(outs):
    ref, tri = outs
    assert list(ref) == list(tri)
    for k in ref:
        assert same(ref[k], tri[k]), (k, ref[k], tri[k])


def kv_dims(name: str, **over) -> dict:
    x = 16 if "fp8" in name else 8
    d = dict(T=6, H=2, D=32, B=3, BS=4, X=x, DX=32 // x, P=5, R=16, S=12, BSX=1)
    if name == "kv_per_token_fp8":
        d.update(BS=16, S=48, BSX=1)
    d.update(over)
    return d


# ------------------------------------------------------------ shape relations at bind
def both_raise(tp, inputs, match):
    for b in BACKENDS:
        with pytest.raises(InputError, match=match) as e:
            QuantPipeline(tp, backend=b)(**clone(inputs))
        assert e.value.loc is not None and e.value.loc.line > 0, b


def test_key_cache_whose_dx_times_x_is_not_d_is_refused():
    tp = KV["kv_copy_bf16"]
    inputs = random_inputs(tp, kv_dims("kv_copy_bf16"))
    inputs["k_cache"] = torch.zeros(3, 2, 1, 4, 8, dtype=torch.bfloat16)     # D/X * X = 8
    both_raise(tp, inputs, r"k_cache: .*DX\*X == D, got 8 vs 32")


LOOSE = HOSTILE["loose"]


def test_cache_heads_and_value_width_must_match_x():
    inputs = {"v": torch.randn(3, 2, 32).bfloat16(), "slots": torch.tensor([0, 1, 2])}
    inputs["v_cache"] = torch.zeros(3, 2, 16, 4, dtype=torch.bfloat16)
    both_raise(LOOSE, inputs, r"v_cache: .*must hold D columns.*D2 == D, got 16 vs 32")
    inputs["v_cache"] = torch.zeros(3, 4, 32, 4, dtype=torch.bfloat16)
    both_raise(LOOSE, inputs, r"v_cache: .*must hold H heads.*H2 == H, got 4 vs 2")


def test_per_token_scales_shorter_than_the_cache_are_refused():
    tp = KV["kv_per_token_fp8"]
    inputs = random_inputs(tp, kv_dims("kv_per_token_fp8"))
    inputs["k_scales"] = inputs["k_scales"][:, :40].contiguous()
    inputs["v_scales"] = inputs["v_scales"][:, :40].contiguous()
    both_raise(tp, inputs, r"k_scales: .*S >= num_blocks \* block_size")


ROPE = HOSTILE["rope_only"]


def rope_inputs(t=4, h=2, d=16, p=6, r=8, q=None, r2=None, pos=None):
    g = torch.Generator().manual_seed(1)
    return {"x": torch.randn(t, h, d, generator=g), "cos": torch.randn(p, r, generator=g),
            "sin": torch.randn(q or p, r2 or r, generator=g),
            "pos": torch.tensor(pos if pos is not None else [0, 5, 2, 1])}


def test_rope_tables_wider_than_half_the_head_or_unequal_are_refused():
    both_raise(ROPE, rope_inputs(r=9, r2=9), r"cos: .*rotary dim.*got 18 vs 16")
    both_raise(ROPE, rope_inputs(q=5), r"sin: .*shape of the cos table")
    both_raise(ROPE, rope_inputs(r2=4), r"sin: .*shape of the cos table")


ODD = HOSTILE


def test_act_mul_of_an_odd_width_is_refused_on_both_backends():
    both_raise(ODD["swiglu"], {"x": torch.randn(4, 63).bfloat16()}, r"x: act_mul needs an even")


def test_reduce_over_zero_splits_is_refused():
    both_raise(ODD["splitk"], {"p": torch.zeros(0, 2, 8)}, r"p: split-K reduce needs")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scalars_are_refused_on_every_call(backend, bad):
    qp = QuantPipeline(ODD["scaled"], backend=backend)
    x = torch.randn(2, 32).bfloat16()
    qp(x, 0.25)
    qp(x, 0.5)                                   # the same signature: the seen-call path
    with pytest.raises(InputError, match="alpha: must be finite"):
        qp(x, bad)
    with pytest.raises(InputError, match="alpha: must be finite"):
        qp(x=x, alpha=bad)


def test_an_empty_row_quantises_like_a_zero_row_on_both_backends():
    outs = run_both(ODD["per_token"], {"x": torch.zeros(3, 0).bfloat16()})
    assert_same(outs)
    assert outs[0]["s"].shape == (3, 1)


# ------------------------------------------------------------ data indices: RoPE
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pos", [[0, 6, 2, -1], [2 ** 40, -(2 ** 40), 5, 0], [6, 6, 6, 6]])
def test_rope_positions_outside_the_table_rotate_by_nan_on_both_backends(pos, device):
    inputs = rope_inputs(pos=pos)
    outs = run_both(ROPE, inputs, device)
    assert_same(outs)
    (out,) = outs[1].values()
    for t, p in enumerate(pos):
        rotated = out[t, :, :16]
        assert bool(rotated.isnan().all()) == (not 0 <= p < 6)


def test_rope_index_check_raise_names_the_position():
    for b in BACKENDS:
        qp = QuantPipeline(ROPE, backend=b, index_check="raise")
        qp(**rope_inputs())
        with pytest.raises(InputError, match=r"pos: pos\[1\] = 6 is out of range for rope: "
                                             r"valid values are \[0, 6\)"):
            qp(**rope_inputs(pos=[0, 6, 2, 1]))


# ------------------------------------------------------------ data indices: KV slots
def with_canaries(cache: torch.Tensor, pad: int = 2):
    """``cache`` as the middle of a larger buffer whose first and last ``pad`` blocks hold
    a pattern: a write outside the cache lands there."""
    big = torch.empty((cache.shape[0] + 2 * pad,) + tuple(cache.shape[1:]), dtype=cache.dtype,
                      device=cache.device)
    bits(big).copy_(torch.randint(0, 120, big.shape, dtype=torch.uint8)
                    .to(bits(big).dtype))
    view = big[pad:pad + cache.shape[0]]
    view.copy_(cache)
    before = bits(big).clone()
    return big, view, before, pad


def assert_canaries(big, before, pad):
    assert torch.equal(bits(big)[:pad], before[:pad])
    assert torch.equal(bits(big)[-pad:], before[-pad:])


def fit(values, dtype) -> torch.Tensor:
    """``values`` as a tensor of ``dtype``, huge ones clamped to its range (i32 slots)."""
    info = torch.iinfo(dtype)
    return torch.tensor([min(max(v, info.min), info.max) for v in values], dtype=dtype)


HOSTILE_SLOTS = [
    [0, 12, 13, 2 ** 40, -1, 5],                 # past the end (capacity 12), far past it
    [3, 3, 3, 7, 7, -(2 ** 40)],                 # duplicates: the later token wins
    [11, 0, 11, 0, 11, 1],
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["kv_copy_bf16", "kv_per_token_fp8", "kv_block_fp8",
                                  "kv_flash_static_fp8"])
@pytest.mark.parametrize("slots", HOSTILE_SLOTS)
def test_hostile_slots_same_on_both_backends_and_nothing_outside_the_cache(name, slots, device):
    tp = KV[name]
    dims = kv_dims(name)
    inputs = random_inputs(tp, dims, seed=3)
    inputs["slots"] = fit(slots, inputs["slots"].dtype)
    inputs["k"] = inputs["k"] * 8
    outs = []
    for qp, dev in ((QuantPipeline(tp, backend="reference"), "cpu"),
                    (triton_pipeline(tp, device), device)):
        run = to(clone(inputs), dev)
        big, view, before, pad = with_canaries(run["k_cache"])
        run["k_cache"] = view
        outs.append({k: v.cpu() for k, v in qp(**run, _as_dict=True).items()})
        assert_canaries(big.cpu(), before.cpu(), pad)
    assert_same(outs)


def test_per_block_amax_counts_only_the_token_that_wins_the_slot():
    tp = KV["kv_block_fp8"]
    inputs = random_inputs(tp, kv_dims("kv_block_fp8"), seed=5)
    k = torch.full_like(inputs["k"], 0.5)
    k[0] = 300.0                                  # overwritten by token 1: must not count
    inputs.update(k=k, slots=torch.tensor([2, 2, -1, -1, -1, -1]),
                  k_scales=torch.zeros_like(inputs["k_scales"]))
    ref, tri = run_both(tp, inputs)
    assert_same((ref, tri))
    assert torch.equal(ref["ks"][:, 0], torch.full((2,), 0.5 / 448.0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["kv_block_fp8", "kv_per_token_fp8"])
def test_repeated_calls_with_one_signature_stay_exact(name, device):
    """The bound fast path reuses one workspace per stream: it must be clean every call."""
    tp = KV[name]
    dims = kv_dims(name)
    ref, tri = QuantPipeline(tp, backend="reference"), triton_pipeline(tp, device)
    for i in range(4):
        inputs = random_inputs(tp, dims, seed=i)
        inputs["k"] = inputs["k"] * (100.0 if i == 0 else 0.01)
        got = tri(**to(clone(inputs), device), _as_dict=True)
        assert_same((ref(**clone(inputs), _as_dict=True), {k: v.cpu() for k, v in got.items()}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="races need a parallel GPU")
@pytest.mark.parametrize("name", ["kv_copy_bf16", "kv_block_fp8", "kv_per_token_fp8"])
def test_gpu_many_tokens_on_few_slots_the_later_token_wins(name):
    """4096 tokens on 5 slots, every program racing for them: the claims decide."""
    tp = KV[name]
    dims = kv_dims(name, T=4096, B=1024)
    dims["S"] = dims["B"] * dims["BS"]
    ref, tri = QuantPipeline(tp, backend="reference"), triton_pipeline(tp, "cuda")
    for i in range(3):
        inputs = random_inputs(tp, dims, seed=i)
        g = torch.Generator().manual_seed(i)
        inputs["slots"] = torch.randint(0, 5, (4096,), generator=g).to(inputs["slots"].dtype)
        got = tri(**to(clone(inputs), "cuda"), _as_dict=True)
        assert_same((ref(**clone(inputs), _as_dict=True), {k: v.cpu() for k, v in got.items()}))


def test_slot_index_check_raise_reports_a_slot_past_the_cache_not_padding():
    tp = KV["kv_copy_bf16"]
    inputs = random_inputs(tp, kv_dims("kv_copy_bf16"))
    inputs["slots"] = torch.tensor([0, -1, 3, -7, 1, 2])
    for b in BACKENDS:
        qp = QuantPipeline(tp, backend=b, index_check="raise")
        qp(**clone(inputs))                      # negative slots are padding, not errors
        bad = clone(inputs)
        bad["slots"] = torch.tensor([0, -1, 3, 12, 1, 2])
        with pytest.raises(InputError, match=r"slots\[3\] = 12 is out of range for cache_write"):
            qp(**bad)
        qp(**clone(inputs))                      # the seen-call path checks too
        with pytest.raises(InputError, match=r"slots\[3\] = 12"):
            qp(**bad)


def test_index_check_policy_names_are_checked(monkeypatch):
    with pytest.raises(InputError, match="index_check='strict'"):
        QuantPipeline(ROPE, index_check="strict")
    monkeypatch.setenv("QFUSE_INDEX_CHECK", "raise")
    assert QuantPipeline(ROPE).index_check == "raise"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slots=st.lists(st.one_of(st.integers(-3, 14), st.sampled_from([2 ** 31 - 1, -(2 ** 40)])),
                      min_size=1, max_size=9),
       name=st.sampled_from(["kv_copy_bf16", "kv_block_fp8", "kv_flash_static_fp8"]))
def test_property_any_slots_same_on_both_backends(slots, name):
    tp = KV[name]
    dims = kv_dims(name, T=len(slots))
    inputs = random_inputs(tp, dims, seed=len(slots))
    inputs["slots"] = fit(slots, inputs["slots"].dtype)
    assert_same(run_both(tp, inputs))


def test_row_counts_past_32_bits_are_refused_not_wrapped():
    """Rows are counted in i32 inside the kernel: 2**31 + 2**16 rows (a broadcast view, no
    memory) must be refused before anything is allocated or launched."""
    x = torch.zeros(1, 1, 1, dtype=torch.bfloat16).expand(2 ** 16, 2 ** 15 + 1, 1)
    with pytest.raises(InputError, match=r"2147549184 rows .* exceed the Triton backend's 32-bit"):
        QuantPipeline(WIDE, backend="triton")(x)


WIDE = HOSTILE["wide"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tokens", [SCAN_TOKENS, SCAN_TOKENS + 44])
@pytest.mark.parametrize("name", ["kv_copy_bf16", "kv_block_fp8"])
def test_duplicates_in_scan_and_claim_modes(name, tokens, device):
    """Up to SCAN_TOKENS tokens the write kernel scans the later slots itself; above, a
    claim launch decides: the same winners either way, including past-the-end slots."""
    tp = KV[name]
    dims = kv_dims(name, T=tokens, B=80)        # 320 slots: every token fits
    inputs = random_inputs(tp, dims, seed=tokens)
    g = torch.Generator().manual_seed(tokens)
    slots = torch.randint(-2, 40, (tokens,), generator=g)
    slots[::7] = 10 ** 6
    inputs["slots"] = slots.to(inputs["slots"].dtype)
    tri = triton_pipeline(tp, device)
    src = next(iter(tri.compiled("triton", "cpu:interp").steps)).source if device == "cpu" \
        else None
    if src is not None:
        assert [n for n, _ in src.launches][0].endswith("_claim")
    assert_same(run_both(tp, inputs, device))
