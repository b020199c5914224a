"""Timing for benchmarks/bench.py: ``triton.testing.do_bench`` medians, CUDA-graph replay
for small M (and, for qfuse, at every M: kernel time without host cost), perf_counter on
the CPU."""
from __future__ import annotations

import statistics
import time

import torch

from benchmarks.report import GRAPH_MAX_M

__all__ = ["Timer"]


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]


class Timer:
    """Medians in microseconds: ``do_bench`` (+ graph replay for small M) or perf_counter."""

    def __init__(self, device, warmup_ms=25, rep_ms=100, graph_inner=20, graph_reps=50,
                 cpu_reps=5):
        self.cuda = device.type == "cuda"
        self.warmup_ms, self.rep_ms = warmup_ms, rep_ms
        self.graph_inner, self.graph_reps, self.cpu_reps = graph_inner, graph_reps, cpu_reps

    def bench_us(self, fn) -> float:
        if not self.cuda:
            fn()
            ts = []
            for _ in range(self.cpu_reps):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts) * 1e6
        import triton.testing
        return triton.testing.do_bench(fn, warmup=self.warmup_ms, rep=self.rep_ms,
                                       return_mode="median") * 1e3

    def graph_us(self, fn, inner=None, reps=None) -> float:
        """Capture ``inner`` calls in one CUDA graph; median replay time per call."""
        inner, reps = inner or self.graph_inner, reps or self.graph_reps
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(inner):
                fn()
        g.replay()
        torch.cuda.synchronize()
        ts = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) * 1e3 / inner)
        del g
        return statistics.median(ts)

    def measure(self, fn, m: int, graph_always: bool = False) -> dict:
        """``{"bench_us", "graph_us"?, "us", "timer"}``; ``us`` is the graph time for small M.
        ``graph_always``: a graph time for large M too (kept apart from ``us``: it has no L2
        flush and no host launch cost, so against ``bench_us`` it shows host overhead)."""
        r = {"bench_us": self.bench_us(fn)}
        r["us"], r["timer"] = r["bench_us"], "bench" if self.cuda else "perf_counter"
        small = m <= GRAPH_MAX_M
        if self.cuda and (small or graph_always):
            try:
                if small:
                    r["graph_us"] = self.graph_us(fn)
                    r["us"], r["timer"] = r["graph_us"], "graph"
                else:               # ~2 ms of work per replay, 20 replays
                    inner = max(1, min(self.graph_inner, int(2000 / r["bench_us"])))
                    r["graph_us"] = self.graph_us(fn, inner=inner, reps=20)
            except Exception as e:
                r["graph_error"] = _err(e)
        return r
