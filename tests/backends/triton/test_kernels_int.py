"""INT8 / INT4 pipelines (SmoothQuant dense and expert-indexed, LayerNorm, packed int4)
through the Triton backend vs the reference."""
import pytest
import torch

from test_kernels_helpers import (assert_bitwise, assert_norm_explained, edge_rows, pipes,
                                  randn, run_both)

P = pipes("""
def smooth_i8(x: bf16[M, N], ss: f32[N]):
    h = smooth(x, ss)
    s = scale(h, i8, per_token)
    return round(h, s, i8), s

def smooth_i8_rne(x: bf16[M, N], ss: f32[N]):
    h = smooth(x, ss)
    s = scale(h, i8, per_token)
    return round(h, s, i8, mode=rne, recip=mul_rcp), s

def moe_smooth_i8(x: bf16[M, N], ss: f32[E, N], ids: i32[M, K]):
    h = smooth(x, ss[ids])
    s = scale(h, i8, per_token)
    return round(h, s, i8, mode=rne), s

def moe_smooth_i8_i64(x: f16[M, N], ss: f32[E, N], ids: i64[M, K]):
    h = smooth(x, ss[ids])
    s = scale(h, i8, per_token, zero=floor)
    return round(h, s, i8), s

def layernorm_i8(x: bf16[M, N], w: bf16[N], b: bf16[N], eps: f32 = 1e-5):
    y = norm(x, w, eps, b=b, kind=layer)
    s = scale(y, i8, per_token, zero=zero)
    return round(y, s, i8, mode=rne, recip=mul_rcp), s

def int4_pack(x: bf16[M, N]):
    s = scale(x, int4, per_1x32)
    return pack(round(x, s, int4, mode=rne)), s

def int4_pack_trunc_nosat(x: bf16[M, N]):
    s = scale(x, int4, per_1x64, dtype_max=7.5)
    return pack(round(x, s, int4, sat=false, dtype_max=7.5)), s

def rms_int4(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps, gemma=true)
    s = scale(y, int4, per_1x32)
    return pack(round(y, s, int4, mode=rne)), s

def int8_unpacked_codes(x: bf16[M, N]):
    s = scale(x, int4, per_1x32)
    return round(x, s, int4), s
""", "int_test.qp")


@pytest.mark.parametrize("name", ["smooth_i8", "smooth_i8_rne"])
@pytest.mark.parametrize("m,n", [(7, 300), (1, 3)])
def test_smoothquant_i8(name, m, n):
    x = edge_rows(m, n)
    ss = torch.rand(n, generator=torch.Generator().manual_seed(1)) + 0.5
    assert_bitwise(*run_both(P[name], {"x": x, "ss": ss}))


@pytest.mark.parametrize("name", ["moe_smooth_i8", "moe_smooth_i8_i64"])
def test_expert_indexed_smooth(name):
    tp = P[name]
    m, n, e, k = 6, 96, 4, 3
    dt = tp.params[0].value.type.dtype.torch_dtype()
    idt = tp.params[2].value.type.dtype.torch_dtype()
    x = edge_rows(m, n, dtype=dt, specials=False)
    ss = torch.rand(e, n, generator=torch.Generator().manual_seed(2)) + 0.5
    ids = torch.tensor([[0, 1, 3], [2, -1, 0], [4, 3, 3], [1, 1, 2], [0, 99, 2], [3, 2, 1]],
                       dtype=idt)              # -1, 4 and 99 are outside [0, E): zero rows
    got, ref = run_both(tp, {"x": x, "ss": ss, "ids": ids})
    assert_bitwise(got, ref)
    assert (got["round_0"][1, 1] == 0).all() and got["s"].shape == (m, k, 1)


def test_layernorm_i8():
    tp = P["layernorm_i8"]
    m, n = 9, 200
    inputs = {"x": edge_rows(m, n, specials=False) + 3, "w": randn(n, seed=1),
              "b": randn(n, seed=2)}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, n)


@pytest.mark.parametrize("name", ["int4_pack", "int4_pack_trunc_nosat", "int8_unpacked_codes"])
@pytest.mark.parametrize("m,n", [(6, 96), (3, 70), (1, 2)])
def test_int4(name, m, n):
    assert_bitwise(*run_both(P[name], {"x": edge_rows(m, n)}))


def test_rmsnorm_int4_gemma():
    tp = P["rms_int4"]
    n = 160
    inputs = {"x": randn(5, n), "w": randn(n, seed=3) * 0.1}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, n)


def test_pack_of_stored_codes_keeps_their_low_nibble():
    """Codes read from memory are whatever the caller stored: like the reference, pack
    keeps each one's low nibble (codes this kernel rounds are 0..15 already)."""
    from qfuse.runtime.pipeline import QuantPipeline
    tp = pipes("def p(c: fp4_e2m1[M, N]):\n    return pack(c)\n")["p"]
    codes = torch.tensor([[16, 1, 200, 255], [7, 15, 0, 8]], dtype=torch.uint8)
    ref, tri = (QuantPipeline(tp, backend=b)(codes.clone()) for b in ("reference", "triton"))
    assert ref.tolist() == [[0x10, 0xF8], [0xF7, 0x80]] and torch.equal(ref, tri)
