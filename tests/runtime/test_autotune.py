"""Autotuning picks the fastest config per kernel and bucket, keeps it, ships it."""
from __future__ import annotations

import torch

from qfuse import quant_pipeline
from qfuse.backends.triton.kernel import TritonConfig
from qfuse.runtime.autotune import TuningTable, shape_bucket

CANDIDATES = [TritonConfig(block_m=bm, num_warps=4) for bm in (1, 2, 4)]


def _fake_timer_factory(costs):
    """A timer that runs the launch once (so failures surface) and charges a made-up cost."""
    def timer(fn):
        fn()
        return costs.pop(0)
    return timer


@quant_pipeline(backend="triton")
def tuned(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s


def test_best_candidate_is_recorded_and_used():
    x = torch.randn(6, 64).bfloat16()
    table = tuned.autotune(x, candidates=CANDIDATES, timer=_fake_timer_factory([3.0, 1.0, 2.0]))
    bucket = shape_bucket("cpu", 6)
    (kernel,) = table.entries
    assert table.config_for(kernel, bucket).block_m == 2
    assert table.entries[kernel][bucket]["us"] == 1000.0
    ex = next(iter(tuned._executors.values()))
    assert ex.runner.config_for(next(s for s in ex.cp.steps), {"M": 6, "N": 64}).block_m == 2
    ref = quant_pipeline(backend="reference")(tuned.__wrapped__)
    for a, b in zip(tuned(x), ref(x)):
        assert torch.equal(a.view(torch.uint8) if a.element_size() == 1 else a,
                           b.view(torch.uint8) if b.element_size() == 1 else b)


def test_failing_candidates_score_inf():
    def timer(fn):
        raise RuntimeError("does not compile")
    table = tuned.autotune(torch.randn(2, 64).bfloat16(), candidates=CANDIDATES, timer=timer)
    assert table.entries == {}                   # nothing recorded: the default rule stays
    q, s = tuned(torch.randn(2, 64).bfloat16())
    assert q.shape == (2, 64)


def test_table_json_round_trip_and_buckets():
    t = TuningTable()
    t.record("k", "H200|rows<=4096", TritonConfig(block_m=4, num_warps=8), 12.5)
    back = TuningTable.loads(t.dumps())
    assert back.config_for("k", "H200|rows<=4096") == TritonConfig(block_m=4, num_warps=8)
    assert back.config_for("k", "H200|rows<=1") is None
    assert shape_bucket("H200", 3000) == "H200|rows<=4096"
    assert shape_bucket("H200", 1) == shape_bucket("H200", 0) == "H200|rows<=1"
    assert shape_bucket("H200", 1 << 30) == "H200|rows<=16777216"


@quant_pipeline(backend="triton")
def batch_named(x: bf16[B, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s


def test_buckets_follow_the_kernels_rows_whatever_the_dims_are_called():
    """``x: bf16[B, N]`` gets a bucket per size, like ``M``; a KV-cache write's rows are
    its (token, head) pairs."""
    t1 = batch_named.autotune(torch.randn(3, 64).bfloat16(), candidates=CANDIDATES[:1],
                              timer=_fake_timer_factory([1.0]))
    t2 = batch_named.autotune(torch.randn(300, 64).bfloat16(), candidates=CANDIDATES[:1],
                              timer=_fake_timer_factory([1.0]))
    (k1,) = t1.entries
    assert list(t1.entries[k1]) == ["cpu|rows<=4"] and list(t2.entries[k1]) == ["cpu|rows<=512"]
    from qfuse.runtime.pipeline import QuantPipeline
    from qfuse.dsl import load_source
    kv = QuantPipeline(load_source(
        "def kv(k: bf16[T, H, D], c: bf16[B, BS, H, D], slots: i64[T]):\n"
        "    return cache_write(k, c, slots, layout=flash)\n", "kv.qp")["kv"], backend="triton")
    (step,) = kv.compiled("triton", "cpu:interp").steps
    assert step.source.rows({"T": 16, "H": 56, "D": 128, "B": 4, "BS": 16}) == 16 * 56


def test_bundle_ships_the_table(tmp_path):
    from qfuse.runtime.build import build_bundle
    from qfuse.runtime.bundle import load
    qp_file = tmp_path / "p.qp"
    qp_file.write_text("def p(x: bf16[M, N]):\n    s = scale(x, i8, per_token)\n"
                       "    return round(x, s, i8), s\n")
    t = TuningTable()
    t.record("p__k0", "cpu|rows<=4", TritonConfig(block_m=1, num_warps=4), 1.0)
    (tmp_path / "t.json").write_text(t.dumps())
    report = build_bundle([str(qp_file)], ["cuda:sm_90"], str(tmp_path / "b"), progress=False,
                          tuning=str(tmp_path / "t.json"))
    assert report.ok
    pipes = load(tmp_path / "b")
    q, s = pipes["p"](torch.randn(3, 32).bfloat16())
    ex = next(iter(pipes["p"]._executors.values()))
    assert ex.tuning.config_for("p__k0", "cpu|rows<=4").block_m == 1


def test_results_are_kept_in_the_runtime_cache():
    x = torch.randn(5, 64).bfloat16()

    @quant_pipeline(backend="triton")
    def kept(x: bf16[M, N]):
        s = scale(x, fp8_e4m3fn, per_token, zero=floor)
        return round(x, s, fp8_e4m3fn), s

    kept.autotune(x, candidates=CANDIDATES, timer=_fake_timer_factory([5.0, 4.0, 1.0]))
    fresh = quant_pipeline(backend="triton")(kept.__wrapped__)   # a new callable, same kernels
    fresh(x)
    ex = next(iter(fresh._executors.values()))
    assert ex.tuning is not None
    assert ex.runner.config_for(ex.cp.steps[0], {"M": 5, "N": 64}).block_m == 4


@quant_pipeline(backend="triton")
def tuned_static(x: bf16[M, N], s: f32[1]):
    return round(x, s, fp8_e4m3fn, granularity=per_tensor)


def test_splittable_kernels_also_try_column_chunks():
    """A kernel without a row-wide reduction gets the column-split candidates too, and the
    winner (here the last candidate, 16 chunks of 16 warps) is recorded and runs exactly."""
    from qfuse.runtime.autotune import CANDIDATES, _split_candidates
    n = len(CANDIDATES(3)) + len(_split_candidates(3))
    costs = [5.0] * (n - 1) + [1.0]
    x, s = torch.randn(3, 256).bfloat16(), torch.tensor([0.05])
    table = tuned_static.autotune(x, s, timer=_fake_timer_factory(costs))
    assert costs == []                               # every candidate was timed
    (kernel,) = table.entries
    cfg = table.config_for(kernel, shape_bucket("cpu", 3))
    assert cfg == TritonConfig(block_m=1, num_warps=16, col_chunks=16)
    ref = quant_pipeline(backend="reference")(tuned_static.__wrapped__)
    assert torch.equal(tuned_static(x, s).view(torch.uint8), ref(x, s).view(torch.uint8))


def test_candidates_follow_the_grid():
    """Decode sizes: one row per program (>= 8 programs along the rows) and 16-warp splits;
    large M: up to 8 rows per program, splits of 4 or 8 warps into at most 8 chunks."""
    from qfuse.runtime.autotune import CANDIDATES, _split_candidates
    assert {c.block_m for c in CANDIDATES(16)} == {1, 2}
    assert {c.block_m for c in CANDIDATES(4096)} == {1, 2, 4, 8}
    assert {c.num_warps for c in _split_candidates(16)} == {4, 8, 16}
    assert {c.num_warps for c in _split_candidates(4096)} == {4, 8}
    assert {c.col_chunks for c in _split_candidates(16)} == {2, 4, 8, 16}
    assert {c.col_chunks for c in _split_candidates(4096)} == {2, 4, 8}


def test_a_damaged_kept_table_is_discarded_not_raised(tmp_path):
    from qfuse.runtime.cache import KernelCache
    from qfuse.runtime.tuning import _cache_key, load_tuning
    cache = KernelCache(tmp_path)
    cp = tuned.compiled("triton", "cpu:interp")
    for bad in ('{"k": {"cpu|rows<=4": {"config": {"block_m": 3}}}}', '[1, 2]', "{not json"):
        cache.put(_cache_key(cp, "cpu"), f"{cp.name}.autotune", {f"{cp.name}.autotune.json": bad})
        assert load_tuning(cp, "cpu", cache) is None
        assert cache.get(_cache_key(cp, "cpu"), f"{cp.name}.autotune") is None


def test_a_shipped_table_with_an_impossible_config_is_refused(tmp_path):
    from qfuse.runtime.schema import SchemaError
    from qfuse.runtime.tuning import read_tuning
    bad = b'{"k": {"cpu|rows<=4": {"config": {"block_m": 3, "num_warps": 4}, "us": 1.0}}}'
    import pytest
    import re
    with pytest.raises(SchemaError, match=re.escape("t.json: k at cpu|rows<=4: block_m must be a "
                                                    "power of two")):
        read_tuning(bad, "t.json")
