"""CPU checks of the benchmark harness (benchmarks/): the .qp file, the torch baselines,
the byte counts and the ``--cpu-smoke`` run, without a GPU and without ``qfuse build``."""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import bench, torch_refs  # noqa: E402
from benchmarks.cases import CASES, kv_dims  # noqa: E402
from benchmarks.report import compare_outputs, summarize_check  # noqa: E402

QP = os.path.join(ROOT, "benchmarks", "pipelines.qp")
SHAPES = [(4, 256), (37, 384)]


def test_qp_parses_and_checks():
    from qfuse.dsl import load_file
    pipes = load_file(QP)
    assert list(pipes) == list(CASES) == list(torch_refs.REFS)
    for name, tp in pipes.items():       # same parameters, same order, as the baselines
        params = [p.value.name for p in tp.params]
        assert params == list(CASES[name].inputs(4, 256)), name
        code = torch_refs.REFS[name].__code__
        assert list(code.co_varnames[:code.co_argcount]) == params, name


@pytest.mark.parametrize("name", list(CASES))
def test_refs_run_and_match_the_reference_backend(name):
    """Every baseline runs on small CPU tensors and equals qfuse's reference semantics."""
    from qfuse.backends.reference import run_pipeline
    from qfuse.dsl import load_file
    tp = load_file(QP)[name]
    for m, n in SHAPES:
        inputs = CASES[name].inputs(m, n, seed=m)
        want = list(run_pipeline(tp, bench._clone(inputs)).values())
        got = torch_refs.REFS[name](**bench._clone(inputs))
        check = compare_outputs(got, want)
        assert summarize_check(check) == "exact", (name, m, n, check)


def test_kv_ref_writes_in_place_and_leaves_other_slots():
    inputs = CASES["kv_key_per_token_fp8"].inputs(5, 256, seed=3)   # 5 tokens in 1 block of 16
    before = inputs["k_cache"].view(torch.uint8).clone()
    kc, ks = torch_refs.kv_key_per_token_fp8(**inputs)
    assert kc is inputs["k_cache"] and ks is inputs["k_scales"]
    written = torch.zeros(16, dtype=torch.bool)
    written[inputs["slots"]] = True
    after = kc.view(torch.uint8)                                     # [NB, H, D/X, BS, X]
    assert torch.equal(after[:, :, :, ~written, :], before[:, :, :, ~written, :])
    assert not torch.equal(after[:, :, :, written, :], before[:, :, :, written, :])


def test_bytes_by_hand():
    # rmsnorm + per-token fp8 at 16 x 7168: x bf16 read, w bf16 read, q fp8 written,
    # one f32 scale per row written
    m, n = 16, 7168
    x, w, q, s = m * n * 2, n * 2, m * n * 1, m * 4
    assert CASES["rmsnorm_per_token_fp8"].nbytes(m, n) == x + w + q + s == 358_464
    # dynamic per-tensor fp8 at 4096 x 7168: x read twice, q written, one f32 scale
    m, n = 4096, 7168
    assert CASES["per_tensor_fp8"].nbytes(m, n) == 2 * (m * n * 2) + m * n + 4 == 146_800_644
    # mxfp4 at 16 x 7168: x read, packed codes (half a byte each), one E8M0 byte per 32
    assert CASES["mxfp4_even"].nbytes(16, 7168) == 16 * 7168 * 2 + 16 * 7168 // 2 + 16 * 224
    # KV write, 16 tokens x 56 heads x 128: key read, slots read, fp8 codes and f32
    # scales written
    t, h, d, nb, bs, _ = kv_dims(16, 7168)
    assert (t, h, d, nb, bs) == (16, 56, 128, 1, 16)
    assert CASES["kv_key_per_token_fp8"].nbytes(16, 7168) == (16 * 56 * 128 * 2 + 16 * 8
                                                              + 16 * 56 * 128 + 16 * 56 * 4)


def test_inputs_are_random_not_zero():
    for name, case in CASES.items():
        for k, v in case.inputs(4, 256).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                assert v.float().abs().sum() > 0, (name, k)


def test_compare_counts_mismatches():
    q = torch.randn(4, 8).clamp(-400, 400).to(torch.float8_e4m3fn)
    q2 = q.view(torch.uint8).clone()
    q2[0, 0] ^= 1                                # one code one step away (same sign)
    s = torch.rand(4, 1)
    s2 = s.clone()
    s2[1] = float("nan")
    check = compare_outputs((q2.view(torch.float8_e4m3fn), s2), (q, s), ["q", "s"])
    assert check["q"]["mismatch"] == 1 and check["q"]["max_step"] == 1
    assert check["s"]["mismatch"] == 1
    assert summarize_check(check) == "q:1/32(<=1) s:1/4"
    assert "error" in compare_outputs((q,), (q, s))
    nan = torch.full((2,), float("nan"))
    assert compare_outputs(nan, nan.clone())["out0"]["mismatch"] == 0


def _fake_bundle():
    """A stand-in for ``qfuse.load``: torch_refs, one pipeline broken, one missing,
    one returning a wrong code."""
    pipes = dict(torch_refs.REFS)

    def broken(**kw):
        raise RuntimeError("kernel exploded")

    def off_by_one(x):
        q, s = torch_refs.per_token_fp8(x)
        b = q.view(torch.uint8).clone()
        b[0, 0] ^= 1
        return b.view(torch.float8_e4m3fn), s
    pipes["mxfp4_even"] = broken
    pipes["per_token_fp8"] = off_by_one
    del pipes["smooth_per_token_i8"]
    return pipes


def test_cpu_smoke_run_with_fake_bundle(tmp_path):
    shapes = [(4, 256), (40, 512)]
    timer = bench.Timer(torch.device("cpu"), cpu_reps=2)
    ckpt = tmp_path / "partial.json"
    res = bench.run(_fake_bundle(), shapes, device="cpu", compile_backend="eager",
                    timer=timer, log=lambda *a: None, checkpoint=str(ckpt))
    assert len(res["results"]) == len(CASES) * len(shapes)
    assert [c["shape"] for c in res["copy"]] == ["4x256", "40x512"]
    assert all(c["gbps"] > 0 for c in res["copy"])
    rows = {(r["pipeline"], r["shape"]): r for r in res["results"]}
    ok = rows[("rmsnorm_per_token_fp8", "40x512")]
    for impl in ("qfuse", "eager", "compile"):
        assert ok[impl]["us"] > 0 and ok[impl]["gbps"] > 0 and ok[impl]["timer"] == "perf_counter"
    assert ok["bytes"] == CASES["rmsnorm_per_token_fp8"].nbytes(40, 512)
    assert summarize_check(ok["correct"]) == "exact"
    assert ok["speedup_vs_compile"] == pytest.approx(ok["compile"]["us"] / ok["qfuse"]["us"])
    assert "kernel exploded" in rows[("mxfp4_even", "4x256")]["qfuse"]["error"]
    assert "eager" in rows[("mxfp4_even", "4x256")] and "us" in rows[("mxfp4_even", "4x256")]["eager"]
    assert "no callable" in rows[("smooth_per_token_i8", "4x256")]["qfuse"]["error"]
    assert rows[("per_token_fp8", "4x256")]["correct"]["q"]["mismatch"] == 1
    sp = [r["speedup_vs_compile"] for r in res["results"] if r.get("speedup_vs_compile")]
    assert len(sp) == res["geomean_count"] == (len(CASES) - 2) * len(shapes)
    assert min(sp) <= res["geomean_speedup_vs_compile"] <= max(sp)
    assert len(res["errors"]) == 4
    text = bench.format_table(res)
    assert "geomean speed-up over torch.compile" in text and "kernel exploded" in text
    assert json.loads(ckpt.read_text())["results"]           # JSON-able, written as it goes


def test_cli_cpu_smoke_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(["--cpu-smoke", "--shapes", "8x256", "--pipelines",
                       "per_tensor_fp8,kv_key_per_token_fp8", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["device"]["device"] == "cpu" and res["device"]["torch"] == torch.__version__
    assert [r["pipeline"] for r in res["results"]] == ["per_tensor_fp8", "kv_key_per_token_fp8"]
    assert all(summarize_check(r["correct"]) == "exact" for r in res["results"])
    assert (tmp_path / "r.md").exists()
    assert "| per_tensor_fp8 | 8x256 |" in capsys.readouterr().out


def test_refs_compile_without_graph_breaks():
    """The baselines trace as one graph each (what torch.compile times on the GPU)."""
    torch._dynamo.reset()
    for name, fn in torch_refs.REFS.items():
        inputs = CASES[name].inputs(4, 256)
        got = torch.compile(fn, dynamic=False, fullgraph=True, backend="eager")(
            **bench._clone(inputs))
        assert summarize_check(compare_outputs(got, fn(**bench._clone(inputs)))) == "exact"


def test_tune_runs_autotune_per_shape_and_writes_the_table(tmp_path):
    """``--tune``: each qfuse callable's ``autotune`` runs on the case's inputs before it is
    timed; the merged table is written after every row (a cut-off run keeps what it has)."""
    from qfuse.runtime.autotune import TuningTable
    from qfuse.backends.triton.kernel import TritonConfig
    calls = []

    class Tunable:
        def __init__(self, fn, name):
            self.fn, self.name = fn, name

        def __call__(self, **kw):
            return self.fn(**kw)

        def autotune(self, **kw):
            calls.append((self.name, tuple(kw[next(iter(kw))].shape)))
            t = TuningTable()
            t.record(f"{self.name}__k0", f"cpu|M<={kw[next(iter(kw))].shape[0]}",
                     TritonConfig(block_m=2, num_warps=4), 1.5)
            return t

    pipes = {"per_token_fp8": Tunable(torch_refs.REFS["per_token_fp8"], "per_token_fp8")}
    table, path = TuningTable(), tmp_path / "tuning.json"
    res = bench.run(pipes, [(4, 256), (8, 256)], names=["per_token_fp8"], device="cpu",
                    impls=("qfuse",), timer=bench.Timer(torch.device("cpu"), cpu_reps=1),
                    log=lambda *a: None, tune=table, tune_path=str(path))
    assert calls == [("per_token_fp8", (4, 256)), ("per_token_fp8", (8, 256))]
    assert all("tuned" in r and r["tune_s"] >= 0 for r in res["results"])
    saved = TuningTable.loads(path.read_text())
    assert saved.config_for("per_token_fp8__k0", "cpu|M<=8") == TritonConfig(block_m=2, num_warps=4)
    assert set(saved.entries["per_token_fp8__k0"]) == {"cpu|M<=4", "cpu|M<=8"}


def test_sass_probe_counts_a_vectorised_kernel():
    """benchmarks/probes/sass_hotpath.py cross-compiles a generated kernel for sm_90 and
    reads registers, instructions and memory widths from Triton's own disassembler."""
    import importlib.util
    path = os.path.join(ROOT, "benchmarks", "probes", "sass_hotpath.py")
    spec = importlib.util.spec_from_file_location("sass_hotpath", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (row,) = mod.main(["--pipelines", "per_token_fp8", "--dims", "M=64,N=1024"])
    assert row["regs"] > 0 and 0 < row["hot"] < row["sass"]
    assert row["memory"].get("LDG.E.128")                # 8 bf16 per load
    assert {"STG.E.64", "STG.E.128"} & set(row["memory"])  # fp8 codes stored in vectors
