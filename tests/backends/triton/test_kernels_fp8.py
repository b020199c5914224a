"""FP8 pipelines through the Triton backend (CPU interpreter) vs the reference, bit for bit
(norm pipelines: up to the fp32 sum order, see test_kernels_helpers)."""
import pytest
import torch

from test_kernels_helpers import (assert_bitwise, assert_norm_explained, edge_rows, pipes,
                                  randn, run_both, split)

P = pipes("""
def per_token_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s

def per_token_fnuz(x: f16[M, N]):
    s = scale(x, fp8_e4m3fnuz, per_token)
    return round(x, s, fp8_e4m3fnuz), s

def per_token_fnuz224(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fnuz, per_token, dtype_max=224.0)
    return round(x, s, fp8_e4m3fnuz, dtype_max=224.0), s

def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s

def add_rms_fp8(x: bf16[M, N], res: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y, h = norm(x, w, eps, residual=res)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s, h

def add_rms_rounded_gemma(x: f16[M, N], res: f16[M, N], w: f16[N], eps: f32 = 1e-5):
    y, h = norm(x, w, eps, residual=res, residual_sum=rounded, gemma=true, dtype=bf16)
    s = scale(y, fp8_e4m3fnuz, per_token)
    return round(y, s, fp8_e4m3fnuz), s, h

def rms_1x128(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_1x128, zero=floor)
    return round(y, s, fp8_e4m3fn, recip=mul_rcp), s

def group64(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x64)
    return round(x, s, fp8_e4m3fn), s

def static_fp8(x: bf16[M, N], s: f32[1]):
    return round(x, s, fp8_e4m3fn, granularity=per_tensor)

def static_fp8_rcp_nosat(x: bf16[M, N], s: f32[1]):
    return round(x, s, fp8_e4m3fn, granularity=per_tensor, recip=mul_rcp, sat=false)

def static_scale_out(x: bf16[M, N], s0: f32[1]):
    s = scale(x, fp8_e4m3fnuz, per_tensor, static=s0)
    return round(x, s, fp8_e4m3fnuz), s

def rms_static(x: bf16[M, N], w: bf16[N], s: f32[1], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    return round(y, s, fp8_e4m3fn, granularity=per_tensor, recip=mul_rcp)

def silu_mul_static(gate: bf16[M, N], up: bf16[M, N], s: f32[1]):
    h = silu(gate) * up
    return round(h, s, fp8_e4m3fn, granularity=per_tensor, recip=mul_rcp)

def per_tensor_dyn(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s

def per_tensor_dyn_one(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fnuz, per_tensor, zero=one)
    return round(y, s, fp8_e4m3fnuz), s

def block128(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_128x128)
    return round(x, s, fp8_e4m3fn), s

def block128_glue(x: f16[M, N], b: f16[N]):
    h = cast(x + b, bf16)
    s = scale(h, fp8_e4m3fnuz, per_128x128, zero=floor)
    return round(h, s, fp8_e4m3fnuz, recip=mul_rcp), s
""", "fp8_test.qp")


@pytest.mark.parametrize("name", ["per_token_fp8", "per_token_fnuz", "per_token_fnuz224",
                                  "group64"])
@pytest.mark.parametrize("m,n", [(7, 300), (1, 1), (3, 64)])
def test_per_token_and_group_exact(name, m, n):
    tp = P[name]
    dt = tp.params[0].value.type.dtype.torch_dtype()
    x = edge_rows(m, n, dtype=dt)
    assert_bitwise(*run_both(tp, {"x": x}))


@pytest.mark.parametrize("name", ["rms_fp8", "rms_1x128"])
@pytest.mark.parametrize("m,n", [(6, 300), (33, 32)])
def test_rmsnorm_fp8(name, m, n):
    tp = P[name]
    x = edge_rows(m, n, specials=False)
    inputs = {"x": x, "w": randn(n, seed=1)}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, n)


@pytest.mark.parametrize("name", ["add_rms_fp8", "add_rms_rounded_gemma"])
def test_add_rmsnorm_residual_out(name):
    tp = P[name]
    dt = tp.params[0].value.type.dtype.torch_dtype()
    m, n = 5, 200
    inputs = {"x": edge_rows(m, n, dtype=dt), "res": randn(m, n, dtype=dt, seed=2),
              "w": randn(n, dtype=dt, seed=3)}
    got, ref = run_both(tp, inputs)
    assert_bitwise({"h": got["h"]}, {"h": ref["h"]})       # residual out: exact
    assert_norm_explained(tp, inputs, got, ref, n)


@pytest.mark.parametrize("name", ["static_fp8", "static_fp8_rcp_nosat", "static_scale_out"])
@pytest.mark.parametrize("sv", [0.37, 1.0, 0.0])
def test_static_per_tensor(name, sv):
    tp = P[name]
    x = edge_rows(6, 130)
    s = torch.tensor([sv], dtype=torch.float32)
    assert_bitwise(*run_both(tp, {"x": x, tp.params[1].value.name: s}))


def test_rmsnorm_static():
    tp = P["rms_static"]
    n = 256
    inputs = {"x": randn(9, n), "w": randn(n, seed=5), "s": torch.tensor([0.02])}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, n)


def test_silu_mul_static():
    # exp differs by at most an ulp between numpy and torch: codes are explained like
    # the norm's (n=8 ulps of slack), and match exactly almost everywhere
    tp = P["silu_mul_static"]
    m, n = 8, 200
    inputs = {"gate": randn(m, n, seed=1), "up": randn(m, n, seed=2),
              "s": torch.tensor([0.01])}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, 8)
    q = tp.return_names[0]
    same = (got[q].view(torch.uint8) == ref[q].view(torch.uint8)).float().mean()
    assert same > 0.999


@pytest.mark.parametrize("m,n", [(5, 300), (0, 16), (1, 1), (40, 33)])
def test_per_tensor_dynamic_two_kernels(m, n):
    tp = P["per_tensor_dyn"]
    kernels = split(tp)
    assert [s for _, s in kernels] == ["tensor_amax", "row"]
    x = edge_rows(m, n, specials=False)
    assert_bitwise(*run_both(tp, {"x": x}, kernels=kernels, block_m=4))


def test_per_tensor_quantise_kernel_knows_its_scale():
    """The amax kernel's scale of the input x bounds the next kernel's x / s (the bounded
    fast path): qf-fuse writes that fact on the next kernel's scale argument
    (``qf.scale_of``, read into ``ParamInfo.scale_of``). A recomputed norm output gets no
    such fact (two kernels may sum a row in different orders), and neither does a
    user's static scale."""
    from qfuse.backends.triton.run import compiled
    for name, bounded in (("per_tensor_dyn", True), ("per_tensor_dyn_one", False)):
        kernels = split(P[name])
        facts = [p.scale_of for p in kernels[1][0].params if p.scale_of is not None]
        assert len(facts) == bounded, name
        texts = [compiled(tp, space).source.text for tp, space in kernels]
        assert ("qf_div_bounded" in texts[1]) == bounded, name
    assert all(p.scale_of is None for p in split(P["static_fp8"])[0][0].params)


def test_per_tensor_dynamic_nan_and_zero():
    tp = P["per_tensor_dyn"]
    kernels = split(tp)
    x = torch.zeros(3, 40, dtype=torch.bfloat16)
    assert_bitwise(*run_both(tp, {"x": x}, kernels=kernels))          # s = 0: codes 0
    x[1, 7] = float("nan")
    assert_bitwise(*run_both(tp, {"x": x}, kernels=kernels))          # s = NaN


def test_per_tensor_dynamic_recomputes_the_norm():
    tp = P["per_tensor_dyn_one"]
    kernels = split(tp)
    assert [s for _, s in kernels] == ["tensor_amax", "row"]
    assert [c.stage for c in kernels[0][0].calls] == ["norm", "scale"]
    n = 96
    inputs = {"x": randn(12, n), "w": randn(n, seed=1)}
    got, ref = run_both(tp, inputs, kernels=kernels, block_m=2)
    assert_norm_explained(tp, inputs, got, ref, n)


@pytest.mark.parametrize("m,n", [(130, 260), (5, 300), (1, 1), (0, 7)])
def test_block128x128(m, n):
    tp = P["block128"]
    x = edge_rows(m, n)
    got, ref = run_both(tp, {"x": x})
    assert_bitwise(got, ref)


def test_block128x128_with_glue():
    tp = P["block128_glue"]
    inputs = {"x": edge_rows(129, 140, dtype=torch.float16, specials=False),
              "b": randn(140, dtype=torch.float16, seed=9)}
    assert_bitwise(*run_both(tp, inputs))
