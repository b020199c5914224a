"""Calling a definition with optional parameters and flags: the arguments select a
variant, each compiles once under its own cache key, and every output of the definition
comes back (None where the variant has none)."""
from __future__ import annotations

import itertools

import pytest
import torch

from qfuse import quant_pipeline
from qfuse.dsl import load_source
from qfuse.errors import InputError
from qfuse.runtime.compiler import compile_key


@quant_pipeline
def quant_i8(x: bf16[M, N], x_scale: f32[N] = None, s_in: f32[1] = None, keep: bool = False):
    h = smooth(x, x_scale) if x_scale is not None else x
    s = scale(h, i8, per_tensor, static=s_in)
    q = round(h, s, i8)
    return q, s, (cast(h, bf16) if keep else None)


PLAIN = load_source("""
def plain(x: bf16[M, N]):
    s = scale(x, i8, per_tensor)
    return round(x, s, i8), s

def smoothed_static(x: bf16[M, N], x_scale: f32[N], s_in: f32[1]):
    h = smooth(x, x_scale)
    q = round(h, s_in, i8)
    return q, s_in, cast(h, bf16)
""")


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(5, 72, generator=g).bfloat16(), torch.rand(72, generator=g) + 0.5,
            torch.tensor([0.02]))


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and torch.equal(a.view(torch.uint8) if a.element_size() == 1
                                              else a, b.view(torch.uint8)
                                              if b.element_size() == 1 else b)


def test_variants_compute_what_the_written_out_pipelines_compute():
    from qfuse.backends.reference import run_pipeline
    x, xs, s_in = _inputs()
    q, s, h = quant_i8(x)
    want = run_pipeline(PLAIN["plain"], {"x": x})
    assert _same(q, want["round_0"]) and _same(s, want["s"]) and h is None
    got = quant_i8(x, x_scale=xs, s_in=s_in, keep=True)
    want = list(run_pipeline(PLAIN["smoothed_static"], {"x": x, "x_scale": xs,
                                                        "s_in": s_in}).values())
    assert all(_same(a, b) for a, b in zip(got, want))


def test_every_variant_is_bit_identical_on_triton():
    tri = quant_pipeline(backend="triton")(quant_i8.__wrapped__)
    x, xs, s_in = _inputs(1)
    for use_xs, use_s, keep in itertools.product((False, True), repeat=3):
        args = dict(x_scale=xs if use_xs else None, s_in=s_in if use_s else None, keep=keep)
        ref, got = quant_i8(x, **args), tri(x, **args)
        assert len(got) == 3 and (got[2] is None) == (not keep)
        assert all(_same(a, b) for a, b in zip(got, ref)), args


def test_each_variant_has_its_own_program_and_cache_key():
    fam = quant_i8.program.family
    keys = {compile_key(tp, "triton", "cuda:sm_90") for tp in fam.variants.values()}
    assert len(keys) == len(fam.variants) == 8
    assert len({tp.name for tp in fam.variants.values()}) == 8
    x, xs, _ = _inputs()
    assert quant_i8.variant(x, xs).program is fam.variants[(True, False, False)]


def test_arguments_bind_by_position_and_name():
    x, xs, s_in = _inputs()
    a = quant_i8(x, None, s_in, True, _as_dict=True)
    b = quant_i8(x=x, s_in=s_in, keep=True, _as_dict=True)
    assert list(a) == ["q", "s", "cast_0"] and all(_same(a[k], b[k]) for k in a)
    with pytest.raises(InputError, match="keep: a flag takes True or False, got int 1"):
        quant_i8(x, keep=1)
    with pytest.raises(InputError, match="quant_i8 has no parameter 'scale'"):
        quant_i8(x, scale=s_in)
    with pytest.raises(InputError, match="quant_i8: x_scale given twice"):
        quant_i8(x, xs, x_scale=xs)
    with pytest.raises(InputError, match="x_scale: expected f32\\[N\\]"):
        quant_i8(x, xs.double())


@quant_pipeline
def kv_write(k: bf16[T, H, D], cache: bf16[B, BS, H, D], slots: i64[T], w: bf16[D] = None):
    kn = cast(norm(k, w), bf16) if w is not None else k
    return cache_write(kn, cache, slots, layout=flash)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_a_variant_updates_the_cache_in_place(backend):
    pipe = quant_pipeline(backend=backend)(kv_write.__wrapped__)
    g = torch.Generator().manual_seed(2)
    k = torch.randn(3, 2, 16, generator=g).bfloat16()
    slots = torch.tensor([5, -1, 0])
    for w in (None, torch.ones(16).bfloat16()):
        cache = torch.zeros(2, 4, 2, 16).bfloat16()
        out = pipe(k, cache, slots, w)
        assert out is cache
        k0 = k[0].float()
        want = k0 if w is None else k0 / torch.sqrt((k0 * k0).mean(-1, keepdim=True) + 1e-6)
        torch.testing.assert_close(cache[1, 1].float(), want, rtol=2 ** -7, atol=0)
        assert not cache[0, 1:].any() and not cache[1, 0].any()
