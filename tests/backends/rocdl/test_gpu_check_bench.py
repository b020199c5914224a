"""benchmarks/gpu_check.py on a rocdl bundle and bench.py's rocdl column, exercised on the
CPU (the bundle's CPU twin stands in for the NVVM twin; the GPU launch itself is covered
with a recording launcher in tests/runtime/test_rocdl_stored.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from benchmarks import bench, gpu_check  # noqa: E402
from benchmarks.report import summarize_check  # noqa: E402
from qfuse.runtime.build import build_bundle  # noqa: E402

# per_token_fp8 as benchmarks/pipelines.qp defines it (bench.py's case of that name)
SRC = """
def per_token_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    q = round(x, s, fp8_e4m3fn)
    return q, s
"""


@pytest.fixture(scope="module")
def rocdl_bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("gc")
    (d / "p.qp").write_text(SRC)
    report = build_bundle([str(d / "p.qp")], ["cuda:sm_90"], str(d / "bundle"),
                          backend="rocdl", progress=False)
    assert report.ok, report.failed
    return d / "bundle"


def test_gpu_check_runs_a_rocdl_bundle(rocdl_bundle, tmp_path, capsys):
    out = tmp_path / "gc.json"
    rc = gpu_check.main(["--bundle", str(rocdl_bundle), "--backend", "rocdl", "--device", "cpu",
                         "--shapes", "1x72,5x40", "--out", str(out)])
    assert rc == 0, capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["backend"] == "rocdl" and "cuda-bindings" in res and res["skipped"] == []
    assert [r["dims"] for r in res["runs"]] == [{"M": 1, "N": 72}, {"M": 5, "N": 40}]
    assert all(r["ok"] and all(o["exact"] for o in r["outputs"].values())
               for r in res["runs"])
    assert "2 passed, 0 failed, 0 not built for rocdl" in capsys.readouterr().out


def test_gpu_check_refuses_a_bundle_of_another_backend(rocdl_bundle):
    args = gpu_check.parse_args(["--bundle", str(rocdl_bundle), "--backend", "triton"])
    assert args.backend == "triton" and args.device == "cuda"
    with pytest.raises(SystemExit, match="is a rocdl bundle, --backend triton was asked"):
        gpu_check.bundle_backend(args.bundle, args.backend)
    assert gpu_check.bundle_backend(args.bundle, None) == "rocdl"
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--bundle", "x", "--backend", "cuda"])


def test_bench_has_a_rocdl_column(rocdl_bundle, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--cpu-smoke", "--bundle", "reference", "--impls", "qfuse,rocdl,eager",
                     "--rocdl-bundle", str(rocdl_bundle), "--pipelines", "per_token_fp8",
                     "--shapes", "4x256", "--warmup-ms", "1", "--rep-ms", "1",
                     "--out", str(out)])
    assert rc == 0
    row = json.loads(out.read_text())["results"][0]
    assert "us" in row["rocdl"] and row["rocdl"]["gbps"] > 0
    assert row["rocdl_vs_triton"] > 0
    assert summarize_check(row["rocdl_correct"]) == "exact"
    text = capsys.readouterr().out
    assert "rocdl (NVVM twin):" in text and "rocdl per_token_fp8 4x256:" in text


def test_bench_says_why_there_is_no_rocdl_callable(tmp_path):
    assert "needs --rocdl-bundle" in str(bench._rocdl_fn(None, "per_token_fp8"))
    pipes = bench._load_rocdl(str(tmp_path / "missing"))
    assert "did not load" in str(bench._rocdl_fn(pipes, "per_token_fp8"))
