"""The command line: ir (every emit level, print-after-all), run, cache; errors exit 1."""
from pathlib import Path

import pytest

from qfuse.cli import main

ROOT = Path(__file__).resolve().parents[1]
FP8 = str(ROOT / "examples" / "fp8.qp")


def test_ir_levels(capsys):
    assert main(["ir", FP8, "--pipeline", "per_token_fp8"]) == 0
    assert '"qf.scale"' in capsys.readouterr().out
    assert main(["ir", FP8, "--pipeline", "per_token_fp8", "--emit", "fused"]) == 0
    assert "qf.kernel" in capsys.readouterr().out
    assert main(["ir", FP8, "--pipeline", "per_token_fp8", "--emit", "triton"]) == 0
    assert "@triton.jit" in capsys.readouterr().out
    assert main(["ir", FP8, "--pipeline", "per_token_fp8", "--emit", "ast"]) == 0
    assert "PipelineDef" in capsys.readouterr().out
    assert main(["ir", FP8, "--pipeline", "per_tensor_fp8", "--print-after-all"]) == 0
    out = capsys.readouterr().out
    for name in ("qf-build", "qf-verify", "qf-dce", "qf-cse", "qf-fuse", "qf-legalize"):
        assert f"IR Dump After {name}" in out


def test_run_prints_a_summary(capsys):
    assert main(["run", FP8, "--pipeline", "rmsnorm_per_token_fp8", "--shape", "M=3,N=64"]) == 0
    out = capsys.readouterr().out
    assert "rmsnorm_per_token_fp8" in out and "float8_e4m3fn" in out


@pytest.mark.parametrize("argv,msg", [
    (["run", FP8, "--pipeline", "nope"], "has no pipeline 'nope'"),
    (["run", FP8, "--pipeline", "per_token_fp8", "--shape", "M=3"], "give a size for N"),
    (["run", FP8, "--pipeline", "per_token_fp8", "--shape", "M3"], "bad --shape entry"),
    (["ir", str(ROOT / "missing.qp")], "missing.qp"),
])
def test_user_errors_exit_1_without_traceback(capsys, argv, msg):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cache_commands(tmp_path, capsys):
    assert main(["cache", "info", "--dir", str(tmp_path)]) == 0
    assert "entries:   0" in capsys.readouterr().out
    assert main(["cache", "clear", "--older-than", "7d", "--dir", str(tmp_path)]) == 0
    assert main(["cache", "clear", "--older-than", "soon", "--dir", str(tmp_path)]) == 1


def test_bench_smoke_runs_from_the_cli(capsys):
    assert main(["bench", "--cpu-smoke", "--bundle", "stub", "--pipelines", "per_token_fp8"]) == 0
    assert "geomean speed-up over torch.compile" in capsys.readouterr().out
