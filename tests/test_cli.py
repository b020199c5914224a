"""The command line: ir (every emit level, print-after-all, .mlir input), opt, run, cache;
errors exit 1."""
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


def test_mlir_input_resumes_after_the_qf_module(capsys, tmp_path):
    """``qfuse ir`` takes the .mlir it printed and goes on from there; ``qfuse opt`` runs
    named passes on it (the golden IR tests drive it under lit)."""
    assert main(["ir", FP8, "--pipeline", "per_tensor_fp8", "--debug-info"]) == 0
    path = tmp_path / "p.mlir"
    path.write_text(capsys.readouterr().out)
    assert main(["ir", str(path), "--emit", "triton"]) == 0
    out = capsys.readouterr().out
    assert "# ===== per_tensor_fp8__k0 =====" in out and "# ===== per_tensor_fp8__k1 =====" in out
    assert main(["opt", str(path), "--passes", "qf-fuse"]) == 0
    assert "func.func private @per_tensor_fp8__k1(" in capsys.readouterr().out
    assert main(["ir", str(path), "--emit", "ast"]) == 1
    assert "a .mlir file has no DSL source" in capsys.readouterr().err
    path.write_text("func.func @f(\n")
    assert main(["opt", str(path)]) == 1
    assert f"{path}:1:14: error: expected non-function type" in capsys.readouterr().err


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


def test_internal_errors_get_a_short_report_and_exit_70(monkeypatch, capsys):
    """Any exception that is not a QfuseError is a bug: one line, no traceback, exit 70."""
    import qfuse.dsl
    def broken(path):
        raise KeyError("dtype")
    monkeypatch.setattr(qfuse.dsl, "load_file", broken)
    assert main(["ir", FP8]) == 70
    err = capsys.readouterr().err
    assert "qfuse: internal error (KeyError: 'dtype')" in err and "QFUSE_DEBUG=1" in err
    assert "Traceback" not in err
    monkeypatch.setenv("QFUSE_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["ir", FP8])


@pytest.mark.parametrize("content,where", [
    (b"def f(x: bf16[M, N]):\n    return \xff\n", ":2:12: error: byte 0xff is not UTF-8"),
    (b"def f(x: bf16[M, N]):\n    return " + b"silu(" * 300 + b"x" + b")" * 300 + b"\n",
     ":2:176: error: expression nested more than 32 brackets deep"),
    (b"def f(x: bf16[M, N]):\n    return cast(x)\n", ":2:12: error: cast needs option dtype"),
])
def test_inputs_that_crashed_are_located_user_errors(tmp_path, capsys, content, where):
    path = tmp_path / "bad.qp"
    path.write_bytes(content)
    assert main(["ir", str(path), "--emit", "fused"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}{where}") and "Traceback" not in err
