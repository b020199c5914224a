"""Column splitting: kernels without a row-wide reduction may give each program a chunk of
a row's columns (``KernelSource.col_split``, ``TritonConfig.col_chunks``). A split must not
change a single bit; kernels that reduce over rows must refuse it."""
import glob
import os

import pytest

from test_kernels_helpers import assert_bitwise, split
from qfuse.backends.triton import TritonConfig, run_pipeline
from qfuse.backends.triton.launch import TritonKernel
from qfuse.backends.triton.codegen import column_split_ok, render_kernel
from qfuse.dsl import load_file
from qfuse.runtime.inputs import random_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PIPES = {}
for f in sorted(glob.glob(os.path.join(ROOT, "examples", "*.qp"))):
    PIPES.update(load_file(f))
DIMS = {"M": 5, "N": 512, "E": 3, "K": 2, "S": 2, "N2": 1024, "A": 8, "B": 64, "R": 5,
        "T": 5, "H": 2, "D": 128, "BS": 16, "P": 64, "X": 16, "DX": 8, "BSX": 1}
SPLITTABLE = sorted(n for n, tp in PIPES.items()
                    if any(column_split_ok(k) and s == "row" for k, s in split(tp)))


def test_some_examples_split_and_reductions_do_not():
    assert {"static_per_tensor_fp8", "mxfp4"} <= set(SPLITTABLE)
    for name in ("per_token_fp8", "rmsnorm_per_token_fp8"):
        (k, _), = split(PIPES[name])
        assert not column_split_ok(k) and render_kernel(k).col_split == 0


@pytest.mark.parametrize("name", SPLITTABLE)
def test_split_is_bit_identical(name):
    tp = PIPES[name]
    dims = {k: v for k, v in DIMS.items() if k in set(tp.symbols())}
    inputs = random_inputs(tp, dims, seed=3)
    whole = run_pipeline(tp, dict(inputs), kernels=split(tp), interpret=True)
    chunked = run_pipeline(tp, dict(inputs), kernels=split(tp),
                           config=TritonConfig(col_chunks=4), interpret=True)
    assert_bitwise(chunked, whole)
    shrunk = 0
    for k, space in split(tp):
        if space == "row" and column_split_ok(k):
            kern = TritonKernel(render_kernel(k))
            env = kern.bind_dims({p.value.name: whole.get(p.value.name, inputs.get(p.value.name))
                                  for p in k.params})
            full = kern._constexprs(TritonConfig(), env, interpret=True)["BLOCK_0"]
            cut = kern._constexprs(TritonConfig(col_chunks=4), env, interpret=True)["BLOCK_0"]
            shrunk += cut < full
    assert shrunk                                # the chunked run really had chunks


def test_chunks_respect_the_group_size_and_the_grid_follows():
    (k, _), = split(PIPES["mxfp4"])
    kern = TritonKernel(render_kernel(k))
    env = {"M": 3, "N": 256}
    cexpr = kern._constexprs(TritonConfig(block_m=1, col_chunks=64), env, interpret=True)
    assert cexpr["BLOCK_0"] == kern.source.col_split == 32      # never below one mx group
    (_, grid), = kern.runs(env, cexpr)
    assert grid == (3, 8)
    auto = kern._constexprs(TritonConfig(), {"M": 16, "N": 8192}, interpret=False)
    assert auto["BLOCK_0"] == 1024 and auto["_warps"] == 4     # 16 rows: 8 chunks each
    big = kern._constexprs(TritonConfig(), {"M": 4096, "N": 8192}, interpret=False)
    assert big["BLOCK_0"] == 8192                              # enough programs: whole rows


def test_bad_chunk_count():
    with pytest.raises(ValueError, match="col_chunks"):
        TritonConfig(col_chunks=3)


@pytest.mark.parametrize("target", ["cuda:sm_90", "hip:gfx942"])
def test_split_kernel_cross_compiles(target):
    (k, _), = split(PIPES["silu_mul_static_fp8"])
    kern = TritonKernel(render_kernel(k))
    asm = kern.compile(target, dims={"M": 16, "N": 7168})
    assert asm.get("ptx" if target.startswith("cuda") else "amdgcn")


def test_small_grids_take_fewer_rows_per_program():
    """Rows of 128 (a KV-cache write at 16 tokens x 56 heads): 32 rows per program would be
    28 programs; on a GPU the launcher shrinks that to about 256 programs."""
    (k, _), = split(PIPES["kv_per_token_fp8"])
    kern = TritonKernel(render_kernel(k))
    env = {s: 4 for s in kern.source.symbols}
    env.update(T=16, H=56, D=128)
    small = kern._constexprs(TritonConfig(), env, interpret=False)
    assert small["BLOCK_M"] == 2 and 16 * 56 // small["BLOCK_M"] >= 256
    env.update(T=4096)
    assert kern._constexprs(TritonConfig(), env, interpret=False)["BLOCK_M"] == 32
    assert kern._constexprs(TritonConfig(block_m=8), env, interpret=False)["BLOCK_M"] == 8
