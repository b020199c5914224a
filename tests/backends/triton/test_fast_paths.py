"""The round fast paths (docs/semantics.md, "fast paths") against the reference: rows whose
scales fall inside, at the edges of and outside the range qf_scale_fast_ok admits, so that
programs take both paths, must give the reference's bits. Property-based over row
magnitudes, shapes and pipelines (every bounded form: division and reciprocal, fp8 OCP and
fnuz, int8 truncation and RNE, group and per-tensor scales, and a static scale that may be
zero)."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_kernels_helpers import assert_bitwise, pipes, run_both, split

P = pipes("""
def per_token_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s

def per_token_fnuz(x: f16[M, N]):
    s = scale(x, fp8_e4m3fnuz, per_token, dtype_max=224)
    return round(x, s, fp8_e4m3fnuz), s

def per_token_i8(x: bf16[M, N], ss: f32[N]):
    h = smooth(x, ss)
    s = scale(h, i8, per_token)
    return round(h, s, i8), s

def rcp_rne_i8(x: bf16[M, N]):
    s = scale(x, i8, per_token)
    return round(x, s, i8, mode=rne, recip=mul_rcp), s

def group32_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x32, zero=floor)
    return round(x, s, fp8_e4m3fn, recip=mul_rcp), s

def per_tensor_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s

def static_fp8(x: bf16[M, N], s: f32[1]):
    return round(x, s, fp8_e4m3fn, granularity=per_tensor)

def mxfp4_even(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return pack(round(x, s, fp4_e2m1)), s

def mxfp4_roundup_codes(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx)
    return round(x, s, fp4_e2m1), s

def mxfp4_codes_and_pack(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=ceil)
    q = round(x, s, fp4_e2m1)
    return q, s, pack(q)                            # the codes cross the fork to the pack

def smooth_mxfp4(x: bf16[M, N], ss: f32[N]):
    h = smooth(x, ss)                               # fp32 values, rounded exactly
    s = scale(h, fp4_e2m1, mx, e8m0=floor)
    return pack(round(h, s, fp4_e2m1)), s
""", "fast_paths.qp")
MX = ("mxfp4_even", "mxfp4_roundup_codes", "mxfp4_codes_and_pack", "smooth_mxfp4")

# powers of two for a row's magnitude: the fast range of a scale amax / 448 is about
# 2^-55 .. 2^135 in amax; these straddle both ends, the subnormals and the overflow
# (the E2M1 fast range, E8M0 bytes 27 .. 230, is an amax of about 2^-98 .. 2^106)
EXPONENTS = [-149, -140, -127, -101, -99, -97, -70, -57, -56, -55, -54, -20, 0, 7, 60, 103,
             105, 107, 118, 119, 120, 126, 127]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(P)), m=st.integers(1, 6), n=st.integers(1, 80),
       exps=st.lists(st.sampled_from(EXPONENTS), min_size=6, max_size=6),
       seed=st.integers(0, 2 ** 16), zero_scale=st.booleans())
def test_fast_and_general_paths_give_the_reference_bits(name, m, n, exps, seed, zero_scale):
    inputs = case_inputs(name, m, n, exps, seed, zero_scale)
    kernels = split(P[name]) if name == "per_tensor_fp8" else None
    assert_bitwise(*run_both(P[name], inputs, kernels=kernels))


def case_inputs(name, m, n, exps, seed, zero_scale, nan=False) -> dict:
    """Rows of randn times 2^exps[row] (group pipelines: N rounded up to the group), a
    smooth scale in [0.5, 1.5), a static scale 2^exps[0] or 0; ``nan``: x[0, 0] is NaN."""
    tp = P[name]
    if name == "group32_fp8":
        n = 32 * (1 + n // 32)
    elif name in MX:
        n = 2 * (1 + n // 2)    # packed pairs; a partial last group of 32 too (the
                                # kernels take it; the executor's input check refuses it)
    g = torch.Generator().manual_seed(seed)
    mags = torch.tensor([2.0 ** e for e in exps[:m]], dtype=torch.float64)[:, None]
    x = torch.randn(m, n, generator=g, dtype=torch.float64) * mags
    if nan:
        x[0, 0] = float("nan")
    inputs = {"x": x.to(tp.params[0].value.type.dtype.torch_dtype())}
    if name in ("per_token_i8", "smooth_mxfp4"):
        inputs["ss"] = torch.rand(n, generator=g) + 0.5
    if name == "static_fp8":
        inputs["s"] = torch.tensor([0.0 if zero_scale else 2.0 ** exps[0]])
    return inputs


@pytest.mark.parametrize("name", ["per_token_fp8", "per_token_i8", "rcp_rne_i8",
                                  "group32_fp8", "per_tensor_fp8", "static_fp8", *MX])
def test_each_pipeline_has_a_fast_path(name):
    """Every pipeline above is rendered with the fast-path branch (the test is about it);
    the E2M1 one has the pack and store in each branch."""
    from qfuse.backends.triton.codegen import render_kernel
    texts = [render_kernel(tp, space).text for tp, space in split(P[name])]
    guard = "qf_e8m0_pow2_ok(" if name in MX else "qf_scale_fast_ok("
    assert any(guard in t for t in texts)
    if name in MX:
        (text,) = texts
        q = P[name].return_names[0]
        assert text.count(f"tl.store({q}_ptr") == 2 and "qf_e2m1_codes_pow2(" in text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(P)), m=st.integers(1, 6), n=st.integers(1, 80),
       exps=st.lists(st.sampled_from(EXPONENTS), min_size=6, max_size=6),
       seed=st.integers(0, 2 ** 16), zero_scale=st.booleans())
def test_fast_paths_on_the_gpu(name, m, n, exps, seed, zero_scale):
    """The same rows through the compiled kernels with hardware fp8 converts (where the
    NaN sign fix of the general path matters): the reference's bits."""
    from qfuse.backends.reference import run_pipeline as ref_run
    from qfuse.backends.triton import TritonConfig, run_pipeline
    tp = P[name]
    inputs = case_inputs(name, m, n, exps, seed, zero_scale, nan=zero_scale)
    kernels = split(tp) if name == "per_tensor_fp8" else None
    dev = {k: v.cuda() for k, v in inputs.items()}
    got = run_pipeline(tp, dev, kernels=kernels, config=TritonConfig(native=True),
                       interpret=False)
    assert_bitwise({k: v.cpu() for k, v in got.items()}, ref_run(tp, inputs))
