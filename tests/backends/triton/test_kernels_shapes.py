"""Odd shapes for the Triton kernels: M in {0, 1, 3, 33}, widths that are not a multiple
of the block, rows per program, row strides larger than N (inputs and outputs), 3-D rows,
and a hypothesis-driven sweep."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_kernels_helpers import assert_bitwise, edge_rows, pipes, randn, run_both, split
from qfuse.backends.triton import TritonConfig, compiled

P = pipes("""
def per_token_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s

def group_i8(x: f16[M, N]):
    s = scale(x, i8, per_1x32, zero=floor)
    return round(x, s, i8, mode=rne), s

def mxfp4(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx)
    return pack(round(x, s, fp4_e2m1)), s

def tokens_3d(x: bf16[B, T, N]):
    s = scale(x, fp8_e4m3fnuz, per_token)
    return round(x, s, fp8_e4m3fnuz), s

def add_cast(x: bf16[M, N], y: f32[M, N], b: f32[N]):
    return cast(x + y * b, f16)
""", "shapes_test.qp")


@pytest.mark.parametrize("m", [0, 1, 3, 33])
@pytest.mark.parametrize("n", [1, 7, 100, 129])
@pytest.mark.parametrize("name", ["per_token_fp8", "group_i8"])
def test_rows_and_widths(name, m, n):
    dt = P[name].params[0].value.type.dtype.torch_dtype()
    x = edge_rows(m, n, dtype=dt)
    assert_bitwise(*run_both(P[name], {"x": x}, block_m=4))


@pytest.mark.parametrize("m", [0, 1, 3, 33])
@pytest.mark.parametrize("n", [2, 34, 130])
def test_mxfp4_widths(m, n):
    assert_bitwise(*run_both(P["mxfp4"], {"x": edge_rows(m, n)}))


@pytest.mark.parametrize("block_m", [1, 2, 16, 64])
def test_rows_per_program(block_m):
    assert_bitwise(*run_both(P["per_token_fp8"], {"x": edge_rows(21, 40)}, block_m=block_m))


def test_row_stride_larger_than_n():
    wide = edge_rows(9, 300)
    x = wide[:, 13:213]                                   # stride 300, N = 200
    assert x.stride() == (300, 1)
    assert_bitwise(*run_both(P["per_token_fp8"], {"x": x}))
    xt = wide.t()[:200]                                   # last dim not contiguous: copied
    assert_bitwise(*run_both(P["per_token_fp8"], {"x": xt}))


def test_output_with_row_stride():
    tp = P["per_token_fp8"]
    x = edge_rows(6, 50)
    (kernel,) = split(tp)
    k = compiled(*kernel)
    q = torch.zeros(6, 64, dtype=torch.float8_e4m3fn)[:, 3:53]
    s = torch.zeros(6, 5)[:, 2:3]
    k.launch({"x": x}, {"round_0": q, "s": s}, interpret=True)
    ref = run_both(tp, {"x": x})[1]
    assert_bitwise({"round_0": q.contiguous(), "s": s.contiguous()}, ref)


def test_three_dim_rows():
    x = edge_rows(2 * 5, 24).reshape(2, 5, 24)
    assert_bitwise(*run_both(P["tokens_3d"], {"x": x}))
    assert_bitwise(*run_both(P["tokens_3d"], {"x": x[:, 1:4]}))   # strided leading dims


def test_broadcast_operands():
    m, n = 4, 33
    inputs = {"x": randn(m, n), "y": randn(m, n, dtype=torch.float32, seed=1),
              "b": randn(n, dtype=torch.float32, seed=2)}
    assert_bitwise(*run_both(P["add_cast"], inputs))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(m=st.integers(0, 40), n=st.integers(1, 160), pad=st.integers(0, 9),
       block_m=st.sampled_from([None, 1, 4, 32]), name=st.sampled_from(["per_token_fp8",
                                                                       "group_i8", "mxfp4"]),
       seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(m, n, pad, block_m, name, seed):
    if name == "mxfp4":
        n += n % 2
    dt = P[name].params[0].value.type.dtype.torch_dtype()
    wide = edge_rows(m, n + pad, dtype=dt, seed=seed)
    x = wide[:, pad:]
    assert_bitwise(*run_both(P[name], {"x": x}, block_m=block_m))


def test_block_m_rule():
    cfg = TritonConfig()
    assert cfg.rows_per_program(4096, interpret=False) == 1
    assert cfg.rows_per_program(64, interpret=False) == 64
    assert cfg.rows_per_program(64, interpret=True) == 256
    with pytest.raises(ValueError):
        TritonConfig(block_m=3)
