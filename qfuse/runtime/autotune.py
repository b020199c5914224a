"""Autotuning of launch configurations (rows per program, warps), kept and shipped.

A kernel's text does not depend on its launch configuration (block sizes are
constexprs), so tuning only picks a :class:`TritonConfig` per kernel, device and shape
bucket. ``tune_pipeline`` times every candidate on real inputs (``triton.testing.do_bench``
on a GPU, CUDA-graph replays for decode sizes; any timer can be injected), scores a
failing candidate ``inf``, and records the best in a :class:`TuningTable`. Tables are
JSON: saved in the runtime cache (``<pipeline>.autotune.json``) and copied into bundles
(``qfuse build --tuning FILE``), and an executor that has one launches with the tuned
config for that bucket.

Buckets (:mod:`qfuse.runtime.tuning`): the row width is already a constexpr, so the
bucket is the device name plus the kernel's row count rounded up to a power of two.
Candidates: rows per program x warps, plus column splits for kernels without a row-wide
reduction.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

from .devices import device_name as _device_name
from .devices import device_target
from .tuning import TuningTable, load_tuning, save_tuning, shape_bucket

__all__ = ["CANDIDATES", "shape_bucket", "TuningTable", "tune_pipeline", "save_tuning",
           "load_tuning"]


def _candidates(rows: int = 1 << 20):
    """Rows per program x warps; at most ``rows // 8`` rows per program (so a decode-size
    grid keeps at least 8 programs along the rows)."""
    from ..backends.triton.kernel import TritonConfig
    return [TritonConfig(block_m=bm, num_warps=w) for bm in (1, 2, 4, 8)
            if bm == 1 or bm <= rows // 8 for w in (4, 8, 16)]


def _split_candidates(rows: int = 1 << 20):
    """Extra candidates for kernels that may split their columns (KernelSource.col_split);
    16 warps too on decode-size grids, where a program's latency is the kernel's."""
    from ..backends.triton.kernel import TritonConfig
    small = rows <= DECODE_ROWS
    warps = (4, 8, 16) if small else (4, 8)
    chunks = (2, 4, 8, 16) if small else (2, 4, 8)     # 16: more programs than SMs at M = 16
    return [TritonConfig(block_m=1, num_warps=w, col_chunks=c) for c in chunks for w in warps]


DECODE_ROWS = 64         # at most this many rows: decode sizes (more splits and warps)
GRAPH_ROWS = 1024        # at most this many rows: time CUDA-graph replays, not launches


CANDIDATES = _candidates


def _gpu_timer(fn: Callable, rows: int = 1 << 20) -> float:
    """Milliseconds per call: ``do_bench``'s median (L2 flushed between calls) or, for
    decode-size grids (``rows <= GRAPH_ROWS``), where a launch from Python costs more than
    the kernel, the median replay of a CUDA graph of 20 calls."""
    import triton.testing
    if rows > GRAPH_ROWS:
        return float(triton.testing.do_bench(fn, warmup=10, rep=40))
    import statistics

    import torch
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()                                # compiled and warm before the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(20):
            fn()
    times = []
    for _ in range(30):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 20)
    return statistics.median(times)


def tune_pipeline(qp, inputs: dict, *, candidates: Optional[Iterable] = None,
                  timer: Optional[Callable] = None, device_name: Optional[str] = None
                  ) -> TuningTable:
    """Time every candidate config for every kernel of ``qp`` on ``inputs``; returns the
    table of winners (also installed in ``qp``'s executor for this device)."""
    from ..backends.base import parse_target
    from ..backends.registry import default_backend, get_backend
    from ..errors import UnsupportedError
    from .executor import Executor, validate_inputs
    device = qp._device(inputs)
    backend = qp.backend or default_backend(device.type)
    b = get_backend(backend)
    if not b.tunable:
        raise UnsupportedError(f"{qp.name}: the {backend} backend launches nothing to tune "
                               f"(autotune a pipeline made with backend='triton')")
    target = str(b.target_for(parse_target(device_target(device))))
    cp = qp.compiled(backend, target)
    validate_inputs(cp, inputs, need_contiguous=True)
    ex = qp._executors.get((backend, target)) or Executor(cp, qp.index_check)
    qp._executors[(backend, target)] = ex
    qp._by_device[device] = ex
    name = device_name or _device_name(device)
    table = TuningTable()
    env = dict(inputs)
    for step in cp.steps:
        if step.source is None:            # a host step (all_reduce): run it, tune nothing
            from ..backends.reference.interpreter import run_pipeline
            params = [p.value.name for p in step.program.params]
            outs = run_pipeline(step.program, {p: env[n] for p, n in zip(params, step.inputs)})
            env.update(zip(step.outputs, outs.values()))
            continue
        kern = ex.runner.kernel(step)
        ins = {n: env[n] for n in step.inputs}
        dims = kern.bind_dims(ins)
        rows = kern.source.rows(dims)
        bucket = shape_bucket(name, rows)
        best = (math.inf, None)
        cands = list(candidates or CANDIDATES(rows))
        if candidates is None and kern.source.col_split:
            cands += _split_candidates(rows)
        for cfg in cands:
            outs = kern.allocate_outputs(ins, dims)
            try:                           # bound once: the timer sees the kernel, not binding
                run = kern.prepare(ins, outs, dims, cfg)
                if run is None:            # an empty grid: nothing to time
                    us = math.inf
                else:
                    us = (timer(run) if timer is not None else _gpu_timer(run, rows)) * 1000.0
            except Exception:              # a config that does not compile or run: inf
                us = math.inf
            if us < best[0]:
                best = (us, cfg)
        if best[1] is not None:
            table.record(step.name, bucket, best[1], best[0])
        outs = kern.allocate_outputs(ins, dims)
        kern.launch(ins, outs, dims, best[1])
        for tensor_name, value_name in kern.source.outputs:
            env[value_name] = outs[tensor_name]
    combined = TuningTable().merge(ex.tuning or TuningTable()).merge(table)   # new results win
    ex.set_tuning(combined, name)
    save_tuning(cp, name, combined)
    return table
