"""Row loops (row_loop.py): with ``TritonConfig.programs`` a row-space kernel runs fewer
programs than row blocks, each looping over blocks with its row-invariant values hoisted.
It must not change a single bit."""
import glob
import os

import pytest

from test_kernels_helpers import assert_bitwise, split
from qfuse.backends.triton import TritonConfig, run_pipeline
from qfuse.backends.triton.launch import TritonKernel
from qfuse.backends.triton.render import render_kernel
from qfuse.backends.triton.row_loop import ROW_LOOP_MARK, loop_over_rows
from qfuse.dsl import load_file
from qfuse.errors import InputError
from qfuse.runtime.inputs import random_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PIPES = {}
for f in sorted(glob.glob(os.path.join(ROOT, "examples", "*.qp"))):
    PIPES.update(load_file(f))
DIMS = {"M": 7, "N": 256, "E": 3, "K": 2, "S": 2, "N2": 512, "A": 8, "B": 64, "R": 7,
        "T": 7, "H": 2, "D": 128, "BS": 16, "P": 64, "X": 16, "DX": 8, "BSX": 1}
LOOPED = sorted(n for n, tp in PIPES.items()
                if any(render_kernel(k, s).row_loop for k, s in split(tp)))


def test_row_kernels_loop_and_others_do_not():
    assert {"per_token_fp8", "rmsnorm_per_token_fp8", "smooth_per_token_i8"} <= set(LOOPED)
    (amax, s0), _ = split(PIPES["per_tensor_fp8"])
    assert s0 == "tensor_amax" and not render_kernel(amax, s0).row_loop


@pytest.mark.parametrize("name", LOOPED)
def test_row_loop_is_bit_identical(name):
    tp = PIPES[name]
    for vec in (16, 8):                   # KV caches: 16 fp8 or 8 bf16 lanes per chunk
        dims = {k: v for k, v in {**DIMS, "X": vec, "DX": 128 // vec}.items()
                if k in set(tp.symbols())}
        inputs = random_inputs(tp, dims, seed=5)
        try:
            once = run_pipeline(tp, dict(inputs), kernels=split(tp), interpret=True)
        except InputError:
            continue
        looped = run_pipeline(tp, dict(inputs), kernels=split(tp),
                              config=TritonConfig(block_m=1, programs=3), interpret=True)
        assert_bitwise(looped, once)
        return
    pytest.fail(f"{name}: no test dims fit")


def test_loop_grid_and_hoisting():
    """programs caps the grid; the norm weight and column mask leave the loop, the row
    load and everything computed from it stay."""
    (k, space), = split(PIPES["rmsnorm_per_token_fp8"])
    kern = TritonKernel(render_kernel(k, space))
    env = {"M": 40, "N": 256}
    cexpr = kern._constexprs(TritonConfig(block_m=1, programs=6), env, interpret=True)
    assert cexpr["ROW_LOOP"] and kern.runs(env, cexpr)[0][1] == (6,)
    base = kern._constexprs(TritonConfig(block_m=1), env, interpret=True)
    assert not base["ROW_LOOP"] and kern.runs(env, base)[0][1] == (40,)
    text = kern.source.text
    loop_at = text.index("for pid_r in range(")
    looped = text[text.index("if ROW_LOOP:"):text.index("else:  # one program")]
    assert looped.index("tl.load(w_ptr") < looped.index("for pid_r")
    assert looped.index("tl.load(x_ptr") > looped.index("for pid_r") and loop_at


def test_written_tensors_are_not_hoisted():
    body = ["    a = tl.load(c_ptr + cols)", "    b = tl.load(w_ptr + cols)",
            "    d = b * row", "    if d:", "        e = b", "    f = e + b"]
    out = loop_over_rows(["    pid = tl.program_id(0)", "    " + ROW_LOOP_MARK] + body,
                         read_only={"w_ptr"})
    looped = out[out.index("    if ROW_LOOP:"):out.index(next(x for x in out if "else:" in x))]
    hoisted = looped[1:looped.index(next(x for x in looped if "for pid_r" in x))]
    assert hoisted == ["        b = tl.load(w_ptr + cols)"]     # c_ptr is written, e in a block
