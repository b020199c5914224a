"""Cross-compilation (no GPU) of kernels built from the qf_* helpers, and the same kernels
in the interpreter: sm_90 (PTX + cubin), gfx942 (fnuz), gfx950 (OCP), checked on the asm."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qf_triton_testlib import DEVICES, k_e2m1_pow2, k_silu, launch
from qf_triton_xkernels import k_mxfp4, k_rmsnorm_fp8, mxfp4_reference, rmsnorm_fp8_reference
from qfuse.backends.triton import numerics as qn
from qfuse.backends.triton.launch.cross_compile import compile_kernel, gpu_target
from qfuse.backends.triton.triton_adapter import version as triton_version

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/inf casts in numpy
RMS_SIG = {"x_ptr": "*bf16", "w_ptr": "*bf16", "q_ptr": "*u8", "s_ptr": "*fp32", "N": "i32", "eps": "fp32"}
MX_SIG = {"x_ptr": "*fp32", "q_ptr": "*u8", "b_ptr": "*u8"}


def rmsnorm_asm(target, fnuz, native, **kw):
    consts = dict(BLOCK=1024, IS_FNUZ=fnuz, DMAX=240.0 if fnuz else 448.0, NATIVE=native)
    return compile_kernel(k_rmsnorm_fp8, RMS_SIG, consts, target, **kw)


def test_gpu_target_from_the_one_target_type():
    t = gpu_target("cuda:sm_90")
    assert (t.backend, t.arch, t.warp_size) == ("cuda", 90, 32)
    assert gpu_target("cuda:sm_100a").arch == 100
    for arch in ("gfx942", "gfx950"):
        t = gpu_target(f"hip:{arch}")
        assert (t.backend, t.arch, t.warp_size) == ("hip", arch, 64)
    assert gpu_target("hip:gfx1100").warp_size == 32
    from qfuse.errors import UnsupportedError
    for bad in ("rocm:mi300", "cpu:interp"):
        with pytest.raises(UnsupportedError):
            gpu_target(bad)


def test_compile_kernel_argument_errors():
    with pytest.raises(ValueError, match="unknown"):
        compile_kernel(k_mxfp4, dict(MX_SIG, bogus="i32"), dict(N=64, MODE=0), "hip:gfx942")
    with pytest.raises(ValueError, match="neither"):
        compile_kernel(k_mxfp4, {"x_ptr": "*fp32"}, dict(N=64, MODE=0), "hip:gfx942")


# ---------------------------------------------------------------- interpreted (and GPU)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fnuz", [False, True])
def test_rmsnorm_fp8_runs(device, fnuz):
    rng = np.random.default_rng(7)
    rows, n, eps, dmax = 6, 1000, 1e-6, 240.0 if fnuz else 448.0
    x = (rng.standard_normal((rows, n)) * np.exp2(rng.integers(-3, 6, (rows, 1)))).astype(np.float32)
    x[3] = 0.0  # amax 0: the scale becomes 1
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    xb, wb = torch.from_numpy(x).bfloat16(), torch.from_numpy(w).bfloat16()
    dev = "cpu" if device == "interp" else device
    q = torch.zeros(rows, n, dtype=torch.uint8, device=dev)
    s = torch.zeros(rows, device=dev)
    launch(k_rmsnorm_fp8, (rows,), device, xb.to(dev), wb.to(dev), q, s, n, eps, BLOCK=1024, IS_FNUZ=fnuz,
           DMAX=dmax, NATIVE=True)
    want_q, want_s = rmsnorm_fp8_reference(xb.float().numpy(), wb.float().numpy(), eps, fnuz, dmax)
    got_s = s.cpu().numpy()
    assert got_s[3] == 1.0 and (q[3] == 0).all()
    np.testing.assert_allclose(got_s, want_s, rtol=4e-7)  # sums may be ordered differently
    got_q = q.cpu().numpy().astype(np.int64)
    diff = got_q != want_q
    assert diff.mean() < 0.01  # only codes within an fp32 rounding of a boundary may differ
    assert (np.abs((got_q & 0x7F) - (want_q & 0x7F))[diff] <= 1).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", [qn.QF_E8M0_ROUNDUP, qn.QF_E8M0_EVEN, qn.QF_E8M0_FLOOR])
def test_mxfp4_runs_bit_exact(device, mode):
    rng = np.random.default_rng(mode)
    rows, n = 4, 256
    x = (rng.standard_normal((rows, n)) * np.exp2(rng.integers(-20, 20, (rows, n // 32)).repeat(32, 1)))
    x = x.astype(np.float32)
    x[0, :32] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6] * 4  # ties at scale 1
    x[1, 32:64] = 0.0
    x[2, 64] = np.nan
    x[3, 96:128] = 2.0 ** -140
    dev = "cpu" if device == "interp" else device
    q = torch.zeros(rows, n // 2, dtype=torch.uint8, device=dev)
    b = torch.zeros(rows, n // 32, dtype=torch.uint8, device=dev)
    launch(k_mxfp4, (rows,), device, torch.from_numpy(x).to(dev), q, b, N=n, MODE=mode)
    want_q, want_b = mxfp4_reference(x, mode)
    assert (b.cpu().numpy() == want_b).all()
    assert (q.cpu().numpy() == want_q).all()


# ---------------------------------------------------------------- cross-compiled
def test_rmsnorm_sm90_native_and_emulated():
    asm = rmsnorm_asm("cuda:sm_90", fnuz=False, native=True)
    ptx = asm["ptx"]
    assert ".target sm_90a" in ptx and asm["cubin"][:4] == b"\x7fELF"
    assert "cvt.rn.satfinite.e4m3x2.f32" in ptx  # the hardware convert
    assert "div.rn.f32" in ptx and "div.full.f32" not in ptx and "div.approx" not in ptx
    assert "sqrt.rn.f32" in ptx and "sqrt.approx" not in ptx and "rsqrt" not in ptx
    assert "max.NaN.f32" in ptx  # the NaN-propagating amax
    assert "fma.rn.f32" not in ptx  # no FMA contraction
    emulated = rmsnorm_asm("cuda:sm_90", fnuz=False, native=False)["ptx"]
    assert "e4m3" not in emulated


def test_fp_fusion_option_reaches_the_backend():
    assert "fma.rn.f32" in rmsnorm_asm("cuda:sm_90", False, True, enable_fp_fusion=True)["ptx"]


def test_rmsnorm_gfx942_fnuz_native():
    asm = rmsnorm_asm("hip:gfx942", fnuz=True, native=True, num_stages=2)
    gcn = asm["amdgcn"]
    assert "gfx942" in gcn and asm["hsaco"][:4] == b"\x7fELF"
    assert "v_cvt_pk_fp8_f32" in gcn
    assert "v_div_fixup_f32" in gcn  # IEEE division sequence
    assert "v_cvt_pk_fp8_f32" not in rmsnorm_asm("hip:gfx942", fnuz=True, native=False)["amdgcn"]


@pytest.mark.parametrize("target,fnuz", [("cuda:sm_90", True), ("cuda:sm_80", False), ("hip:gfx942", False),
                                         ("hip:gfx950", True)])
def test_native_falls_back_to_emulation(target, fnuz):
    """NATIVE=True where the target has no trusted hardware convert: the integer emulation,
    no Triton software cast (and no compile error for fnuz on NVIDIA)."""
    code = rmsnorm_asm(target, fnuz=fnuz, native=True)
    text = code.get("ptx") or code.get("amdgcn")
    assert "e4m3" not in text and "cvt_pk_fp8" not in text and "cvt_scalef32_pk_fp8" not in text
    assert len(text) < 1.5 * len((rmsnorm_asm(target, fnuz=fnuz, native=False).get("ptx") or "x" * len(text)))


def test_rmsnorm_gfx950_ocp_native():
    gcn = rmsnorm_asm("hip:gfx950", fnuz=False, native=True)["amdgcn"]
    assert "gfx950" in gcn and "v_div_fixup_f32" in gcn
    if triton_version() >= (3, 7):
        assert "v_cvt_scalef32_pk_fp8_f32" in gcn
    else:  # triton 3.6 has no gfx950 fp8 convert lowering: the cast is emulated in software
        assert "cvt_scalef32_pk_fp8" not in gcn and "cvt_pk_fp8" not in gcn


@pytest.mark.parametrize("target", ["cuda:sm_90", "hip:gfx942", "hip:gfx950"])
def test_mxfp4_compiles_everywhere(target):
    for mode in (qn.QF_E8M0_ROUNDUP, qn.QF_E8M0_FLOOR):
        asm = compile_kernel(k_mxfp4, MX_SIG, dict(N=256, MODE=mode), target)
        binary = asm["cubin"] if "cubin" in asm else asm["hsaco"]
        code = asm["ptx"] if "ptx" in asm else asm["amdgcn"]
        assert binary[:4] == b"\x7fELF"
        assert "fp8" not in code.lower() and "e4m3" not in code  # pure integer E2M1 / E8M0
        has_div = "div.rn.f32" in code or "v_div_fixup_f32" in code
        assert has_div == (mode == qn.QF_E8M0_ROUNDUP)  # roundup divides by max_pos


@pytest.mark.parametrize("target", ["cuda:sm_90", "hip:gfx942", "hip:gfx950"])
def test_silu_and_e2m1_fast_path_compile_everywhere(target):
    """qf_silu takes PTX inline asm (ex2/rcp.approx.ftz) on NVIDIA only; AMD compiles the
    portable form (v_exp_f32, v_rcp_f32); the E2M1 fast path is one fma and integer work."""
    silu = compile_kernel(k_silu, {"x_ptr": "*fp32", "y_ptr": "*fp32"}, dict(N=256), target)
    e2m1 = compile_kernel(k_e2m1_pow2, {"x_ptr": "*fp32", "b_ptr": "*u8", "y_ptr": "*i32"},
                          dict(N=256), target)
    if target.startswith("cuda"):
        assert "ex2.approx.ftz.f32" in silu["ptx"] and "rcp.approx.ftz.f32" in silu["ptx"]
        assert "div.rn" not in silu["ptx"] and "div.full" not in silu["ptx"]
        assert "fma.rn.f32" in e2m1["ptx"] and "mul.f32" not in e2m1["ptx"]
    else:
        assert "v_exp_f32" in silu["amdgcn"] and "v_rcp_f32" in silu["amdgcn"]
        assert re.search(r"v_fma\w*_f32", e2m1["amdgcn"])          # v_fma / fmac / fmamk
        assert "v_mul_f32" not in e2m1["amdgcn"]


def test_kernels_decorated_under_triton_interpret():
    """With TRITON_INTERPRET=1 at import, @triton.jit gives InterpretedFunctions: the same
    kernel still runs interpreted and cross-compiles."""
    here = Path(__file__).parent
    script = (
        "import numpy as np, torch\n"
        "from qf_triton_xkernels import k_mxfp4, mxfp4_reference\n"
        "from qfuse.backends.triton.launch.cross_compile import compile_kernel\n"
        "from qfuse.backends.triton.triton_adapter import interpret\n"
        "x = np.linspace(-9, 9, 128, dtype=np.float32).reshape(1, 128)\n"
        "q, b = torch.zeros(1, 64, dtype=torch.uint8), torch.zeros(1, 4, dtype=torch.uint8)\n"
        "interpret(k_mxfp4)[(1,)](torch.from_numpy(x), q, b, N=128, MODE=0)\n"
        "wq, wb = mxfp4_reference(x, 0)\n"
        "assert (q.numpy() == wq).all() and (b.numpy() == wb).all()\n"
        "from qf_triton_xkernels import k_rmsnorm_fp8\n"
        "sig = {'x_ptr': '*bf16', 'w_ptr': '*bf16', 'q_ptr': '*u8', 's_ptr': '*fp32', 'N': 'i32', 'eps': 'fp32'}\n"
        "ptx = compile_kernel(k_rmsnorm_fp8, sig, dict(BLOCK=256, IS_FNUZ=False, DMAX=448.0, NATIVE=True),"
        " 'cuda:sm_90')['ptx']\n"
        "assert 'cvt.rn.satfinite.e4m3x2.f32' in ptx\n"
        "asm = compile_kernel(k_mxfp4, {'x_ptr': '*fp32', 'q_ptr': '*u8', 'b_ptr': '*u8'},"
        " dict(N=128, MODE=0), 'hip:gfx942')\n"
        "assert asm['hsaco'][:4] == b'\\x7fELF'\n"
        "print('ok')\n")
    root = here.parents[2]
    env = dict(os.environ, TRITON_INTERPRET="1",
               PYTHONPATH=os.pathsep.join([str(here), str(root), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_jit_launch_uses_the_hardware_convert():
    """On a real GPU the JIT path (not ASTSource) also selects the native convert, and the
    emulation for fnuz (no NVIDIA convert); both were checked bit for bit above."""
    from qf_triton_testlib import k_fp8
    x = torch.linspace(-500, 500, 1024, device="cuda")
    for fnuz, native in ((False, True), (True, True), (False, False)):
        y = torch.empty(1024, dtype=torch.uint8, device="cuda")
        k = k_fp8[(1,)](x, y, N=1024, IS_FNUZ=fnuz, DMAX=240.0 if fnuz else 448.0, SAT=True, NATIVE=native)
        assert ("cvt.rn.satfinite.e4m3x2.f32" in k.asm["ptx"]) == (native and not fnuz)
