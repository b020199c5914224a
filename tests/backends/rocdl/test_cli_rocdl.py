"""The ROCDL backend from the command line: ``qfuse build --backend rocdl`` for the three
targets on this CPU-only machine, and ``qfuse ir --emit`` down to AMDGCN and PTX."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from qfuse.backends.rocdl.codeobj import MACH, read_code_object

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _qfuse(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qfuse.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def test_build_for_gfx942_gfx950_and_sm_90(tmp_path):
    out = tmp_path / "bundle"
    run = _qfuse("build", str(EXAMPLES / "mxfp4.qp"), "--backend", "rocdl", "--target",
                 "hip:gfx942", "--target", "hip:gfx950", "--target", "cuda:sm_90", "-o",
                 str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "rocdl"
    assert "rmsnorm_mxfp4_shuffle" in manifest["pipelines"]       # the shuffled scale too
    bins = manifest["pipelines"]["mxfp4"]["binaries"]
    assert sorted(bins) == ["cuda:sm_90", "hip:gfx942", "hip:gfx950"]
    for chip in ("gfx942", "gfx950"):
        hsaco = (out / f"binaries/hip_{chip}/mxfp4__k0.hsaco").read_bytes()
        assert read_code_object(hsaco).mach == MACH[chip]
        asm = (out / f"binaries/hip_{chip}/mxfp4__k0.amdgcn").read_text()
        assert f'-{chip}"' in asm and "mxfp4__k0" in asm
        assert ("v_cvt_scalef32_pk_fp4_f32" in asm) == (chip == "gfx950")
    assert ".target sm_90" in (out / "binaries/cuda_sm_90/mxfp4__k0.ptx").read_text()
    assert (out / "binaries/cuda_sm_90/mxfp4__k0.cubin").read_bytes()[:4] == b"\x7fELF"


def test_ir_emit_ladder():
    run = _qfuse("ir", str(EXAMPLES / "fp8.qp"), "--pipeline", "fnuz_per_token_vllm", "--emit",
                 "amdgcn", "--target", "hip:gfx942")
    assert run.returncode == 0, run.stderr
    assert "v_cvt_pk_fp8_f32" in run.stdout
    run = _qfuse("ir", str(EXAMPLES / "fp8.qp"), "--pipeline", "per_token_fp8", "--emit", "ptx",
                 "--print-after-all")
    assert run.returncode == 0, run.stderr
    # the lowering passes (each after the fused module), then the backend's conversions
    for stage in ("IR Dump After qf-fuse", "IR Dump After qf-lower-loops",
                  "IR Dump After qf-map-gpu{target=cuda:sm_90}", "nvvm (cuda:sm_90)",
                  "llvm (cuda:sm_90)", "ptx (cuda:sm_90)"):
        assert stage in run.stdout, stage
    run = _qfuse("ir", str(EXAMPLES / "fp8.qp"), "--pipeline", "per_token_fp8", "--backend",
                 "rocdl", "--print-after-all")
    assert run.returncode == 0, run.stderr
    dumps = [line for line in run.stdout.splitlines() if line.startswith("// -----//")]
    assert [d.split("After ")[1].split(" //")[0] for d in dumps[-3:]] == [
        "qf-verify", "qf-lower-loops", "qf-map-gpu{target=hip:gfx942}"], dumps
    run = _qfuse("ir", str(EXAMPLES / "fp8.qp"), "--emit", "ptx", "--target", "hip:gfx942")
    assert run.returncode == 1 and "--emit ptx is for cuda:sm_90" in run.stderr
    run = _qfuse("ir", str(EXAMPLES / "glue.qp"), "--pipeline", "reduce_act_mul_group_fp8",
                 "--emit", "loops")
    assert run.returncode == 0 and "scf.for" in run.stdout, run.stderr     # rank-3 partials
