"""The same pipelines compiled for the GPU (NATIVE=True: hardware fp8 converts, no FMA
contraction) vs the reference on CPU. Skipped without a CUDA device."""
import numpy as np
import pytest
import torch

import test_kernels_cache_block as CB
import test_kernels_fp8 as F
import test_kernels_glue as G
import test_kernels_int as I
import test_kernels_mx as X
from test_kernels_helpers import (assert_bitwise, assert_norm_explained, edge_rows, randn,
                                  split)
from qfuse.backends.reference import run_pipeline as ref_run
from qfuse.backends.triton import TritonConfig, run_pipeline

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def on_gpu(tp, inputs, kernels=None, block_m=None, native=False):
    dev = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    got = run_pipeline(tp, dev, kernels=kernels,
                       config=TritonConfig(block_m=block_m, native=native), interpret=False)
    torch.cuda.synchronize()
    return {k: v.cpu() for k, v in got.items()}, ref_run(tp, inputs)


EXACT = [
    (F.P, "per_token_fp8", lambda: {"x": edge_rows(37, 1000)}),
    (F.P, "per_token_fnuz224", lambda: {"x": edge_rows(9, 4096)}),
    (F.P, "group64", lambda: {"x": edge_rows(17, 300)}),
    (F.P, "static_fp8", lambda: {"x": edge_rows(6, 130), "s": torch.tensor([0.37])}),
    (F.P, "static_fp8_rcp_nosat", lambda: {"x": edge_rows(6, 130), "s": torch.tensor([0.1])}),
    (F.P, "block128", lambda: {"x": edge_rows(300, 260)}),
    (I.P, "smooth_i8", lambda: {"x": edge_rows(7, 300), "ss": torch.rand(300) + 0.5}),
    (I.P, "int4_pack", lambda: {"x": edge_rows(6, 96)}),
    (X.P, "mxfp4_shuffle_pad", lambda: {"x": X.mx_rows(37, 96).to(torch.bfloat16)}),
    (X.P, "mxfp8_fn", lambda: {"x": X.mx_rows(8, 256).to(torch.bfloat16)}),
    (G.P, "flatten_group", lambda: {"x": edge_rows(24, 50, specials=False).reshape(4, 6, 50)}),
    (G.P, "rope_neox", lambda: {"x": randn(5, 3, 32), "cos": randn(11, 8, dtype=torch.float32),
                                "sin": randn(11, 8, dtype=torch.float32, seed=2),
                                "pos": torch.tensor([0, 10, 3, 3, 7])}),
] + [(X.P, f"mxfp4_{m}", lambda: {"x": X.mx_rows(7, 96).to(torch.bfloat16)}) for m in X.MODES]


@pytest.mark.parametrize("pipes,name,make", EXACT, ids=[e[1] for e in EXACT])
def test_gpu_exact(pipes, name, make):
    assert_bitwise(*on_gpu(pipes[name], make()))


@pytest.mark.parametrize("layout,quant,cdt,scale_layout", G.CASES)
def test_gpu_cache_write(layout, quant, cdt, scale_layout):
    tp = G.cache_pipe(layout, quant, cdt, scale_layout)
    assert_bitwise(*on_gpu(tp, G.cache_inputs(layout, quant, cdt, scale_layout)))


def test_gpu_per_tensor_dynamic():
    tp = F.P["per_tensor_dyn"]
    for m, n in [(0, 16), (1, 1), (1000, 512)]:
        assert_bitwise(*on_gpu(tp, {"x": edge_rows(m, n, specials=False)}, kernels=split(tp)))


NORM = [
    (F.P, "rms_fp8", lambda n: {"x": randn(64, n), "w": randn(n, seed=1)}),
    (F.P, "add_rms_fp8", lambda n: {"x": randn(64, n), "res": randn(64, n, seed=2),
                                    "w": randn(n, seed=1)}),
    (F.P, "rms_1x128", lambda n: {"x": randn(64, n), "w": randn(n, seed=1)}),
    (I.P, "layernorm_i8", lambda n: {"x": randn(64, n) + 3, "w": randn(n, seed=1),
                                     "b": randn(n, seed=2)}),
]


@pytest.mark.parametrize("pipes,name,make", NORM, ids=[e[1] for e in NORM])
@pytest.mark.parametrize("n", [4096, 333])
def test_gpu_norm(pipes, name, make, n):
    inputs = make(n)
    got, ref = on_gpu(pipes[name], inputs)
    assert_norm_explained(pipes[name], inputs, got, ref, n)


@pytest.mark.parametrize("layout", list(CB.LAYOUT_SHAPE))
@pytest.mark.parametrize("cdt", ["fp8_e4m3fn", "i8"])
def test_gpu_cache_per_block(layout, cdt):
    tp = CB.block_pipe(layout, cdt, "default")
    assert_bitwise(*on_gpu(tp, CB.block_inputs(layout, cdt, "default")))


NATIVE = [(F.P, "rms_fp8", lambda: {"x": randn(64, 333), "w": randn(333, seed=1)}),
          (F.P, "per_token_fp8", lambda: {"x": edge_rows(37, 1000)}),
          (F.P, "per_token_fnuz", lambda: {"x": edge_rows(37, 1000, dtype=torch.float16)})]


@pytest.mark.parametrize("pipes,name,make", NATIVE, ids=[e[1] for e in NATIVE])
def test_gpu_native_fp8_converts(pipes, name, make):
    inputs = make()
    got, ref = on_gpu(pipes[name], inputs, native=True)
    assert_norm_explained(pipes[name], inputs, got, ref, inputs["x"].shape[-1])


def test_gpu_direct_launch():
    """A BoundLaunch switches to the compiled kernel's launcher after its first call and
    gives the same codes with new tensors of the same signature."""
    from qfuse.backends.triton.launch.fastpath import bind_launch
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.backends.triton.codegen import render_kernel
    kern = TritonKernel(render_kernel(F.P["per_token_fp8"]))
    x = edge_rows(37, 1000).cuda()
    dims = kern.bind_dims({"x": x})
    first = kern.launch({"x": x}, kern.allocate_outputs({"x": x}, dims), dims)
    bl = bind_launch(kern, {"x": x}, first, dims)
    results = []
    for _ in range(3):
        x2 = x.clone()
        outs = bl.allocate({"x": x2}, x2.device)
        bl({"x": x2}, outs)
        results.append(outs)
    torch.cuda.synchronize()
    assert bl.direct is not None
    for outs in results:
        for k in first:
            assert torch.equal(outs[k].view(torch.uint8), first[k].view(torch.uint8)), k


def test_gpu_amax_workspace_streams_and_graphs():
    """The tensor_amax kernel leaves its workspace zeroed, so a bound launch reuses one per
    stream and one per CUDA-graph capture (workspace.py): eager calls on two streams and a
    graph replayed on new data all give amax / 448, and every workspace ends zeroed."""
    from qfuse.backends.triton.launch.fastpath import bind_launch
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.backends.triton.codegen import render_kernel
    (k0, space), _ = split(F.P["per_tensor_dyn"])
    kern = TritonKernel(render_kernel(k0, space))
    x = edge_rows(300, 1000, specials=False).cuda()
    dims = kern.bind_dims({"x": x})
    first = kern.launch({"x": x}, kern.allocate_outputs({"x": x}, dims), dims)
    bl = bind_launch(kern, {"x": x}, first, dims)
    (name,) = first

    def want(t):         # numpy's fp32 division (torch's CUDA scalar division multiplies)
        amax = np.float32(t.float().abs().max().item())
        return torch.tensor([amax / np.float32(448.0)], device=t.device)

    def call(t):
        outs = bl.allocate({"x": t}, t.device)
        bl({"x": t}, outs)
        return outs[name]

    for k in range(4):                          # jit, then the direct launcher
        t = x * (k + 1)
        assert torch.equal(call(t), want(t)), k
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = x * 0.5
        got = call(t)
    side.synchronize()
    assert torch.equal(got, want(t))
    static_x = x.clone()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_s = call(static_x)
    for mag in (3.0, 0.25, 7.0):
        static_x.copy_(x * mag)
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_s, want(static_x)), mag
    pool = bl.ws_pool
    assert pool is not None and pool.used == 3 and len(pool.by_stream) == 2
    assert int(pool.buffer.abs().sum()) == 0
