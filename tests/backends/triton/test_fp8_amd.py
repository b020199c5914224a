"""The AMD side of the Triton backend, on the CPU (no AMD GPU here):

* ``_qf_fp8_amd_sat`` (qf_fp8_bits with SAT on gfx94x / gfx950): a numpy model of its
  sequence, with the hardware convert modelled as HIP's headers define it, equals the
  numpy oracle and the reference backend's encoder on every fp32 upper half, the fp8
  edge values and random values;
* the gfx942 / gfx950 AMDGCN of benchmark kernels has the expected instructions (the
  convert straight to the store, AMD's exp / rcp in silu);
* rmsnorm_mxfp4_shuffle cross-compiles for AMD in seconds (it did not in 20 minutes);
* the AMD launch rule (warps of 64 lanes) and that NVIDIA's is unchanged.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qf_triton_testlib import SPECIALS, f32, fp8_magnitudes, fp8_oracle, nearest_even
from test_triton_numerics import fp8_edge_values, random_f32

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---------------------------------------------------------------- the sequence, modelled
def hw_convert(x, fnuz):
    """The hardware convert (v_cvt_pk_fp8_f32 to e4m3fnuz on gfx94x, v_cvt_scalef32_pk_fp8_f32
    with scale 1 to e4m3fn on gfx950) on what _qf_fp8_amd_sat hands it: NaN, or a finite
    value within the format max. RNE with subnormals (Triton's exhaustive CDNA3 / CDNA4
    downcast tests); NaN -> 0x80 and zero -> 0x00 on fnuz (amd_hip_fp8.h, whose device
    path is this convert after a clamp and whose host path is its reference); NaN ->
    sign | 0x7F and zero keeping its sign on e4m3fn (amd_hip_ocp_host.hpp)."""
    x = np.asarray(x, dtype=np.float32)
    nan, neg = np.isnan(x), np.signbit(x).astype(np.int64)
    ax = np.where(nan, 0.0, np.abs(x.astype(np.float64)))
    fmax = 240.0 if fnuz else 448.0
    assert not (ax > fmax).any() and not np.isinf(x).any(), "outside the convert's contract"
    code = nearest_even(fp8_magnitudes(fnuz, virtual=False), ax)
    if fnuz:
        return np.where(nan, 0x80, np.where(code == 0, 0, code | (neg << 7)))
    return np.where(nan, 0x7F | (neg << 7), code | (neg << 7))


def amd_sat_model(v, fnuz, dmax, nan_abs=True):
    """numerics_codes._qf_fp8_amd_sat in numpy: x = NaN ? (fnuz: v; e4m3fn: |v|) :
    clamp(v, -D, D); the byte is the convert of x. (The clamp's value on a NaN lane is
    not used; med3 gives a bound.)"""
    v = np.asarray(v, dtype=np.float32)
    nan = np.isnan(v)
    c = np.where(nan, np.float32(-dmax), np.clip(v, np.float32(-dmax), np.float32(dmax)))
    keep = np.abs(v) if (nan_abs and not fnuz) else v
    return hw_convert(np.where(nan, keep, c), fnuz)


def every_high_half():
    hi = np.arange(2 ** 16, dtype=np.uint64) << 16
    return f32((hi[:, None] + np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF],
                                       dtype=np.uint64)).ravel())


CASES = [(True, 240.0), (True, 224.0), (False, 448.0), (False, 300.0)]


@pytest.mark.parametrize("fnuz,dmax", CASES)
def test_amd_sequence_matches_the_oracle(fnuz, dmax):
    x = np.concatenate([every_high_half(), fp8_edge_values(fnuz), SPECIALS,
                        random_f32(20000, -14, 10)])
    got, want = amd_sat_model(x, fnuz, dmax), fp8_oracle(x, fnuz, dmax, True)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(int(x.view(np.uint32)[i])), hex(int(got[i])), hex(int(want[i])))
                           for i in bad[:5]]


@pytest.mark.parametrize("fnuz,dmax", CASES)
def test_amd_sequence_matches_the_reference_encoder(fnuz, dmax):
    """The same model against qfuse's reference backend (reference/numerics.round_fp8)."""
    import torch
    from qfuse.backends.reference.numerics import round_fp8
    x = np.concatenate([every_high_half(), fp8_edge_values(fnuz), SPECIALS])
    want = round_fp8(torch.from_numpy(x), "fp8_e4m3fnuz" if fnuz else "fp8_e4m3fn", dmax)
    assert (amd_sat_model(x, fnuz, dmax) == want.view(torch.uint8).numpy()).all()


def test_the_model_catches_a_signed_nan():
    """The |v| on e4m3fn's NaN lanes matters: without it a negative NaN gives 0xFF."""
    x = f32([0xFFC00000, 0x7FC00000])
    assert list(amd_sat_model(x, False, 448.0, nan_abs=False)) == [0xFF, 0x7F]
    assert list(amd_sat_model(x, False, 448.0)) == [0x7F, 0x7F]


# ---------------------------------------------------------------- the AMDGCN
def _amdgcn(pipeline: str, chip: str, m: int = 4096, n: int = 7168) -> list:
    """The AMDGCN of each kernel of a benchmark pipeline, fp8 as the chip's own e4m3."""
    import re
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.dsl import load_source
    from qfuse.runtime.compiler import compile_pipeline
    qp = ROOT / "benchmarks" / "pipelines.qp"
    fp8 = "fp8_e4m3fnuz" if chip == "gfx942" else "fp8_e4m3fn"
    pipes = load_source(re.sub(r"\bfp8_e4m3fn\b", fp8, qp.read_text()), str(qp))
    cp = compile_pipeline(pipes[pipeline], "triton", f"hip:{chip}")
    return [TritonKernel(s.source).compile(f"hip:{chip}", {"M": m, "N": n})["amdgcn"]
            for s in cp.steps]


@pytest.mark.parametrize("chip,cvt", [("gfx942", "v_cvt_pk_fp8_f32"),
                                      ("gfx950", "v_cvt_scalef32_pk_fp8_f32")])
def test_fp8_store_is_the_convert(chip, cvt):
    """static_per_tensor_fp8: per element the clamp (v_med3_f32), the NaN test and select,
    then the convert, whose bytes go to the store: none of the byte fix-ups of the
    magnitude-only path (0x7F masks of converted bytes, 0x7F800001 NaN bound)."""
    from qfuse.backends.triton.triton_adapter import version
    if chip == "gfx950" and version() < (3, 7):
        pytest.skip("triton 3.6 emulates OCP fp8 on gfx950")
    (gcn,) = _amdgcn("static_per_tensor_fp8", chip)
    assert gcn.count(cvt) >= 16 and gcn.count("v_med3_f32") >= 32
    assert gcn.count("v_cmp_u_f32") >= 32
    assert "0x7f800001" not in gcn and "v_and_b32_sdwa" not in gcn


def test_silu_uses_amds_exp_and_rcp():
    """silu on AMD: v_exp_f32 and v_rcp_f32 per element (as NVIDIA's ex2 / rcp approx),
    no correctly rounded division per element (v_div_fixup_f32 only for 1 / scale)."""
    (gcn,) = _amdgcn("silu_mul_static_fp8", "gfx942")
    assert gcn.count("v_exp_f32") >= 32 and gcn.count("v_rcp_f32") >= 32
    assert gcn.count("v_div_fixup_f32") <= 2


def test_rmsnorm_mxfp4_shuffle_compiles_for_amd_in_seconds():
    """Its pad loop's shuffle index once made make_ttgir run for more than 20 minutes on
    AMD (buffer-op pointer canonicalisation); now it is seconds (a subprocess, timed out
    at 120 s)."""
    code = ("import sys, time; sys.path.insert(0, 'tests/backends/triton')\n"
            "from test_fp8_amd import _amdgcn\n"
            "t = time.time(); _amdgcn('rmsnorm_mxfp4_shuffle', 'gfx950', 16, 7168)\n"
            "print(time.time() - t)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 60


# ---------------------------------------------------------------- launch rule
def _kernel(pipeline: str):
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.dsl import load_source
    from qfuse.runtime.compiler import compile_pipeline
    qp = ROOT / "benchmarks" / "pipelines.qp"
    cp = compile_pipeline(load_source(qp.read_text(), str(qp))[pipeline], "triton", "cpu:interp")
    return TritonKernel(cp.steps[0].source)


@pytest.mark.parametrize("m,nvidia,amd", [(4096, 8, 4), (16384, 8, 4), (16, 4, 1)])
def test_warps_of_64_lanes_on_amd(m, nvidia, amd):
    """About 32 elements per lane on both: a row of 8192 takes 8 warps of 32 on NVIDIA and
    4 wavefronts of 64 on AMD; a decode-size grid's column chunk of 1024, 4 and 1 (AMD
    has no 16-warp decode rule)."""
    from qfuse.backends.triton.kernel import TritonConfig
    k = _kernel("static_per_tensor_fp8")
    env = {"M": m, "N": 8192}
    assert k._constexprs(TritonConfig(), env, False, hip=False)["_warps"] == nvidia
    assert k._constexprs(TritonConfig(), env, False, hip=True)["_warps"] == amd
    assert k._constexprs(TritonConfig(num_warps=8), env, False, hip=True)["_warps"] == 8
