"""``cache_write`` on the ROCDL backend: every layout (key, value, value_asm, flash,
preshuffle) and the quant modes none / static / per_token (scale layouts default, asm and
token; zero, floor, recip, int8 mode, amax_floor, pow2) through the CPU twin against the
reference, with slots that skip (negative, past the cache), repeat (the later token wins,
in any row order), T = 0 and 1, zero tokens, strided x, a computed x (norm + rope), and
the GPU forms still lowering.

The cache is updated in place: the kernel stores into its output, which the runner hands
over as the parameter's tensor; the reference returns new tensors, so each call here
gets clones."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from qfuse.backends.base import parse_target
from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.backends.rocdl.cpu import compile_cpu
from qfuse.backends.rocdl.kernel import render
from qfuse.backends.rocdl.lower import gpu_stage
from qfuse.backends.rocdl.mapping import Loops
from qfuse.dialect.in_place import updated_params
from qfuse.dsl import load_file, load_source
from qfuse.runtime.compare import compare_outputs, tolerant_stages
from qfuse.runtime.compiler import compile_pipeline
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PIPES = {n: tp for n, tp in load_file(EXAMPLES / "kvcache.qp").items()}


def _run(tp, inputs: dict) -> dict:
    clones = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return QuantPipeline(tp, backend="rocdl")(**clones, _as_dict=True)


def _agree(tp, inputs: dict, what: str) -> None:
    tol = tolerant_stages(tp)
    ok, msg = compare_outputs(_run(tp, inputs), run_pipeline(tp, inputs), tol)
    assert ok and (tol or msg == "exact"), f"{what}: {msg}"


def _slots(inputs: dict, t: int, cap: int) -> dict:
    """Slots that skip (negative, past the cache), repeat (the later token wins) and land
    in the last slot."""
    out = dict(inputs)
    for k, v in inputs.items():
        if k in ("slots",) and v.numel() > 3:
            v = v.clone()
            v[0], v[1], v[2] = -1, cap, v[3]           # padding, past the end, a repeat
            v[-1] = cap - 1
            out[k] = v
    return out


DIMS = {"T": 6, "H": 2, "D": 32, "B": 4, "BS": 8, "X": 8, "DX": 4, "BSX": 1, "S": 32, "P": 9,
        "R": 8}


def _dims(t: int) -> dict:
    return {**DIMS, "T": t}


@pytest.mark.parametrize("name", sorted(set(PIPES) - {"kv_block_fp8"}))   # per_block: below
def test_example_pipelines(name):
    tp = PIPES[name]
    for t in (6, 1, 0):
        dims = _dims(t)
        if name in ("kv_per_token_fp8",):
            dims.update({"X": 16, "DX": 2, "BSX": 1, "BS": 16, "S": 64})
        inputs = random_inputs(tp, dims, seed=t + 1)
        _agree(tp, _slots(inputs, t, dims["B"] * dims["BS"]), f"{name} T={t}")


QUANT_CASES = {
    "preshuffle_token": "def p(k: bf16[T, H, D], c: fp8_e4m3fn[B, BSX, H, DX, X, X],\n"
                        "      s: f32[B, BSX * X, H], slots: i64[T]):\n"
                        "    q, t = cache_write(k, c, slots, layout=preshuffle, quant=per_token, "
                        "scales=s, scale_layout=token, amax_floor=0.5, pow2=true, vec=4)\n"
                        "    return q, t\n",
    "flash_bf16_f16x": "def p(k: f16[T, H, D], c: bf16[B, BS, H, D], slots: i64[T]):\n"
                       "    return cache_write(k, c, slots, layout=flash)\n",
    "value_static_i8": "def p(k: bf16[T, H, D], c: i8[B, H, D, BS], s: f32[1], slots: i32[T]):\n"
                       "    return cache_write(k, c, slots, layout=value, quant=static, "
                       "scales=s, mode=rne, recip=div)\n",
    "asm_token_fnuz": "def p(k: bf16[T, H, D], c: fp8_e4m3fnuz[B, H, BSX, D, X],\n"
                      "      s: f32[B, H, BS], slots: i64[T]):\n"
                      "    q, t = cache_write(k, c, slots, layout=value_asm, quant=per_token, "
                      "scales=s, scale_layout=asm, zero=one, floor=none, vec=4)\n    return q, t\n",
    "key_token_i8": "def p(k: bf16[T, H, D], c: i8[B, H, DX, BS, X], s: f32[H, S], slots: i64[T]):\n"
                    "    q, t = cache_write(k, c, slots, layout=key, quant=per_token, "
                    "scales=s, dtype_max=100.0, vec=4)\n    return q, t\n",
}


@pytest.mark.parametrize("case", sorted(QUANT_CASES))
def test_options(case):
    tp = next(iter(load_source(QUANT_CASES[case]).values()))
    for t in (7, 1):
        dims = {**DIMS, "T": t, "BSX": 2, "X": 4, "BS": 8, "DX": 8}
        inputs = random_inputs(tp, dims, seed=t)
        k = inputs["k"]
        k[0, 0, :4] = torch.tensor([float("nan"), 0.0, 1e4, -1e-40]).to(k.dtype)
        if t > 1:
            k[-1] = 0                                   # an all-zero token (written)
        _agree(tp, _slots(inputs, t, dims["B"] * dims["BS"]), f"{case} T={t}")


def test_strided_x():
    tp = PIPES["kv_per_token_fp8"]
    dims = {**_dims(5), "X": 16, "DX": 2, "BS": 16, "S": 64}
    inputs = random_inputs(tp, dims, seed=4)
    for k in ("k", "v"):
        big = torch.zeros(10, 2, 40, dtype=inputs[k].dtype)
        big[::2, :, 4:36] = inputs[k]
        inputs[k] = big[::2, :, 4:36]
    _agree(tp, inputs, "strided")


class _Reversed(Loops):
    """The CPU loops with the rows (tokens) walked last to first: on the GPU the blocks run
    in any order, so which token wins a repeated slot must not depend on it."""

    @contextmanager
    def rows(self, e, count):
        with super().rows(e, count) as i:
            yield e.bin("subi", e.bin("subi", count, i, "index"), e.idx(1), "index")


@pytest.mark.parametrize("name", ["kv_copy_bf16", "kv_per_token_fp8"])
def test_the_later_token_wins_in_any_row_order(name):
    tp = PIPES[name]
    dims = {**_dims(8), "X": 16, "DX": 2, "BS": 16, "S": 64} if "fp8" in name else _dims(8)
    inputs = random_inputs(tp, dims, seed=8)
    slots = inputs["slots"]
    slots[5], slots[6] = slots[1], slots[1]             # three tokens, one slot: token 6 wins
    want = run_pipeline(tp, inputs)
    cp = compile_pipeline(tp, "rocdl", "cpu:interp")
    (step,) = cp.steps
    kernel = compile_cpu(step.source.name, Loops().module([render(step.program, step.space,
                                                                  _Reversed())]),
                         step.source.args)
    prog = step.program
    ins = {p.value.name: inputs[n].clone() for p, n in zip(prog.params, step.inputs)}
    aliases = updated_params(prog)
    outs = [ins[aliases[v.name]] for v in prog.returns]
    kernel([ins[p.value.name] for p in prog.params] + outs)
    got = {ret: dict(zip(step.outputs, outs))[val] for ret, val in cp.returns}
    ok, msg = compare_outputs(got, want, 0)
    assert ok and msg == "exact", msg


BLOCK_CASES = {
    "example": PIPES["kv_block_fp8"],
    "value_i8_sb16_asm": "def p(k: bf16[T, H, D], c: i8[B, H, D, BS], s: f32[NSB, H], "
                         "slots: i32[T]):\n"
                         "    q, t = cache_write(k, c, slots, layout=value, quant=per_block, "
                         "scales=s, scale_layout=asm, scale_block=16, zero=one, floor=none, "
                         "recip=div, mode=rne)\n    return q, t\n",
    "flash_always": "def p(k: bf16[T, H, D], c: fp8_e4m3fnuz[B, BS, H, D], s: f32[H, B], "
                    "slots: i64[T]):\n"
                    "    q, t = cache_write(k * 2.0, c, slots, layout=flash, quant=per_block, "
                    "scales=s, requant=always)\n    return q, t\n",
}


@pytest.mark.parametrize("case", sorted(BLOCK_CASES))
def test_per_block_scales(case):
    src = BLOCK_CASES[case]
    tp = src if not isinstance(src, str) else next(iter(load_source(src).values()))
    g = torch.Generator().manual_seed(3)
    for t in (9, 1, 0):
        dims = {**DIMS, "T": t, "X": 16, "DX": 2, "NSB": 2}
        inputs = random_inputs(tp, dims, seed=t)
        cache = next(k for k in inputs if k.endswith("cache") or k == "c")
        inputs[cache] = (torch.randn(inputs[cache].shape, generator=g) * 40).clamp(
            -127, 127).to(inputs[cache].dtype)                     # old codes to requantise
        scales = next(k for k in inputs if k in ("s", "k_scales"))
        inputs[scales] = torch.rand(inputs[scales].shape, generator=g) * 0.02
        inputs[scales].view(-1)[0] = float("nan")                # a NaN old scale is kept
        if t > 4:                                 # padding, past the cache, a repeat, offset 0
            inputs["slots"][:4] = torch.tensor([-1, 32, 13, 13], dtype=inputs["slots"].dtype)
            inputs["slots"][4] = 16
            inputs["k"][5] = 0                                    # an all-zero token
        _agree(tp, inputs, f"{case} T={t}")


def test_the_gpu_form_lowers():
    for tp in [PIPES["rmsnorm_rope_key_cache"], PIPES["kv_per_token_fp8"],
               PIPES["kv_block_fp8"],
               next(iter(load_source(QUANT_CASES["asm_token_fnuz"]).values()))]:
        for step in compile_pipeline(tp, "rocdl", "any").steps:
            for target, text in step.source.gpu.items():
                assert "llvm.func" in gpu_stage(text, parse_target(target)), (tp.name, target)
