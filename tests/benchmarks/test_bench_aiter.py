"""bench.py's aiter column, the decode rows and the KV scatter roofline on the CPU: the
harness with a stand-in AITER (in process, perf_counter timing), and the real peer's
kernels through bench.py's CLI in the Triton interpreter (a subprocess: the peer sets
TRITON_INTERPRET=1 for its process)."""
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import aiter_impl, bench, torch_refs  # noqa: E402
from benchmarks.report import HEADER_AITER, markdown  # noqa: E402


def test_default_shapes_have_the_decode_rows():
    ms = [m for m, _ in bench.parse_shapes(bench.DEFAULT_SHAPES)]
    assert {1, 16, 64} <= set(ms) and max(ms) >= 16384
    from benchmarks.report import GRAPH_MAX_M
    assert all(m <= GRAPH_MAX_M for m in (1, 16, 64))     # timed by CUDA-graph replay


def test_aiter_column_with_a_stand_in(monkeypatch):
    """A stand-in AITER (torch_refs, one pipeline absent, one wrong, one broken): times,
    x aiter, its own correctness entry, the geomean, the table's columns."""
    def column_fn(peer, name):
        assert peer == "peer"
        if name == "smooth_per_token_i8":
            return aiter_impl.Absent("no AITER Triton kernel for this pipeline")
        if name == "mxfp4_even":
            return RuntimeError("peer exploded")
        if name == "per_token_fp8":
            def wrong(x):
                q, s = torch_refs.per_token_fp8(x)
                return q, s * 2
            return wrong
        return torch_refs.REFS[name]
    monkeypatch.setattr(aiter_impl, "column_fn", column_fn)
    names = ["per_token_fp8", "smooth_per_token_i8", "mxfp4_even", "static_per_tensor_fp8",
             "kv_key_per_token_fp8"]
    res = bench.run(dict(torch_refs.REFS), [(1, 256), (4, 256)], names=names, device="cpu",
                    impls=("qfuse", "eager", "aiter"), peer="peer",
                    timer=bench.Timer(torch.device("cpu"), cpu_reps=1), log=lambda *a: None)
    rows = {(r["pipeline"], r["shape"]): r for r in res["results"]}
    ok = rows[("static_per_tensor_fp8", "4x256")]
    assert ok["aiter"]["us"] > 0 and ok["speedup_vs_aiter"] == pytest.approx(
        ok["aiter"]["us"] / ok["qfuse"]["us"])
    assert rows[("per_token_fp8", "1x256")]["aiter_vs_eager"]["s"]["mismatch"] == 1
    assert "compile_vs_eager" not in rows[("per_token_fp8", "1x256")]
    absent = rows[("smooth_per_token_i8", "1x256")]
    assert absent["aiter"] == {"absent": "no AITER Triton kernel for this pipeline"}
    assert "speedup_vs_aiter" not in absent
    assert "peer exploded" in rows[("mxfp4_even", "1x256")]["aiter"]["error"]
    assert res["geomean_aiter_count"] == 3 * 2      # per_token, static, kv (stand-in) x 2
    kv = rows[("kv_key_per_token_fp8", "4x256")]
    assert kv["scatter_roofline"]["us"] > 0 and kv["qfuse"]["pct_scatter"] > 0
    text = bench.format_table(res)
    assert "| " + " | ".join(HEADER_AITER) + " |" in text
    assert "geomean speed-up over AITER" in text and "scatter roofline kv_key_per_token_fp8 4x256" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| smooth_per_token_i8 | 1x256"))
    assert len(line.split(" | ")) == len(HEADER_AITER)
    assert line.split(" | ")[5] == "-" and line.split(" | ")[10] == "-"
    # a kept results file renders the same way (docs/performance.md's blocks)
    assert "x aiter" in markdown({**json.loads(json.dumps(res, default=str)), "run": "t"})


def test_the_aiter_peer_is_missing(monkeypatch):
    peer = aiter_impl.load_peer("/nonexistent/peer", cpu=True)
    assert isinstance(peer, FileNotFoundError)
    res = bench.run(dict(torch_refs.REFS), [(2, 256)], names=["per_token_fp8"], device="cpu",
                    impls=("qfuse", "aiter"), peer=peer,
                    timer=bench.Timer(torch.device("cpu"), cpu_reps=1), log=lambda *a: None)
    (row,) = res["results"]
    assert "no run_aiter_peer.py" in row["aiter"]["error"] and len(res["errors"]) == 1


@pytest.mark.skipif(aiter_impl.find() is None, reason="no AITER peer (../shared/peers/aiter)")
def test_bench_cli_times_the_real_aiter_peer_in_the_interpreter(tmp_path):
    """The peer's kernels import from a copy and run through bench.py's code path on tiny
    shapes; every mapped output has the shape and dtype of torch_refs' (the argument
    mapping), absent pipelines say why. (Codes are not compared: the interpreter's fp8
    casts are wrong, and AITER's numerics are its own.)"""
    import shutil
    peer = tmp_path / "peer"
    shutil.copytree(aiter_impl.find(), peer)
    out = tmp_path / "r.json"
    names = "per_tensor_fp8,rmsnorm_group128_fp8,rmsnorm_mxfp4_shuffle,silu_mul_static_fp8," \
            "smooth_per_token_i8,kv_key_per_token_fp8"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench.py"),
                        "--cpu-smoke", "--impls", "qfuse,eager", "--aiter", str(peer),
                        "--shapes", "1x256,3x512", "--pipelines", names, "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["impls"] == ["qfuse", "eager", "aiter"]
    rows = {(x["pipeline"], x["shape"]): x for x in res["results"]}
    for (name, shape), row in rows.items():
        if name in ("smooth_per_token_i8", "kv_key_per_token_fp8"):
            assert "absent" in row["aiter"], row["aiter"]
            continue
        assert row["aiter"].get("us", 0) > 0, (name, shape, row["aiter"])
        assert all("error" not in e for e in row["aiter_vs_eager"].values()), row["aiter_vs_eager"]
        assert row["speedup_vs_aiter"] > 0
    assert "x aiter" in r.stdout and "geomean speed-up over AITER" in r.stdout


def test_merge_of_split_runs(tmp_path):
    """Pipelines split over two commands of one device call merge into one run."""
    from benchmarks import report
    kw = dict(device="cpu", impls=("qfuse", "eager", "compile"), compile_backend="eager",
              timer=bench.Timer(torch.device("cpu"), cpu_reps=1), log=lambda *a: None)
    a = bench.run(dict(torch_refs.REFS), [(2, 256), (4, 256)], names=["per_token_fp8"], **kw)
    b = bench.run(dict(torch_refs.REFS), [(4, 256)], names=["static_per_tensor_fp8"], **kw)
    paths = []
    for i, d in enumerate((a, b)):
        paths.append(str(tmp_path / f"{i}.json"))
        bench.write_json(d, paths[-1])
    out = tmp_path / "m.json"
    assert report.main(["--merge", *paths, "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert [c["shape"] for c in m["copy"]] == ["2x256", "4x256"]
    assert [(r["pipeline"], r["shape"]) for r in m["results"]] == [
        ("per_token_fp8", "2x256"), ("per_token_fp8", "4x256"), ("static_per_tensor_fp8", "4x256")]
    assert m["geomean_count"] == 3
    assert "static_per_tensor_fp8 | 4x256" in report.markdown({**m, "run": "x", "commit": "y"})
