"""The ROCDL stages that read other rows or columns (split-K ``reduce``, ``flatten``, row
``gather``, expert-indexed ``smooth``, ``rope``, the ``shuffle`` store layout, ``act_mul``
of a computed value) and E2M1 ``mode=half_up``: the CPU twin against the reference on the
example pipelines and on option-space pipelines, with hostile indices (negative, past the
end, packed high bits, i64 beyond i32), M = 0 and 1, partial groups, strided inputs; and
every one of them still lowers through the gpu / rocdl / nvvm ladder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qfuse.backends.base import parse_target
from qfuse.backends.reference import numerics as ref
from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.backends.rocdl.lower import gpu_stage
from qfuse.dialect.options import RoundMode
from qfuse.dsl import load_file, load_source
from qfuse.errors import QfuseError
from qfuse.runtime.compare import compare_outputs, tolerant_stages
from qfuse.runtime.compiler import compile_pipeline
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PIPES = {name: tp for f in sorted(EXAMPLES.glob("*.qp")) for name, tp in load_file(f).items()}

#: example pipelines this module checks: their dims at (m, n)
ROW_EXAMPLES = {
    "flatten_group_fp8": lambda m, n: {"M": m, "A": 4, "B": n // 4},
    "moe_smoothquant_i8": lambda m, n: {"M": m, "N": n, "E": 3, "K": 2},
    "moe_sort_mxfp4": lambda m, n: {"M": m, "N": n, "R": m + 6},
    "reduce_act_mul_group_fp8": lambda m, n: {"S": 3, "M": m, "N2": 2 * n},
    "rmsnorm_mxfp4_shuffle": lambda m, n: {"M": m, "N": n},
}
SHAPES = [(5, 256), (3, 96), (1, 64), (0, 64), (40, 160)]   # 96, 160: partial groups


def _hostile(name: str, inputs: dict) -> dict:
    """Indices outside their range (negative, at the bound, far past it, packed high
    bits), a zero row and specials in the float data."""
    out = dict(inputs)
    for k, v in inputs.items():
        if not isinstance(v, torch.Tensor) or not v.numel():
            continue
        v = v.clone()
        if v.dtype in (torch.int32, torch.int64):
            flat = v.view(-1)
            bad = [-1, 1 << 20, -(1 << 30), 3, 7 | (5 << 24)][: flat.numel()]
            flat[: len(bad)] = torch.tensor(bad, dtype=v.dtype)
        elif v.dim() >= 2:
            v.view(-1, v.shape[-1])[0] = 0
            specials = torch.tensor([float("nan"), -0.0, 1e-40, 6.5, -2.5, 3e4])
            n = min(v.shape[-1], specials.numel())
            v.view(-1, v.shape[-1])[-1, :n] = specials[:n].to(v.dtype)
        out[k] = v
    return out


def _agree(tp, pipe, inputs: dict, what: str) -> None:
    """Bit-identical outputs (norms and activations: the agreement rule)."""
    tol = tolerant_stages(tp)
    ok, msg = compare_outputs(pipe(**inputs, _as_dict=True), run_pipeline(tp, inputs), tol)
    assert ok and (tol or msg == "exact"), f"{what}: {msg}"


@pytest.mark.parametrize("name", sorted(ROW_EXAMPLES))
def test_example_pipelines(name):
    tp, pipe = PIPES[name], QuantPipeline(PIPES[name], backend="rocdl")
    for m, n in SHAPES:
        inputs = random_inputs(tp, ROW_EXAMPLES[name](m, n), seed=m + n)
        _agree(tp, pipe, inputs, f"{name} {m}x{n}")
        _agree(tp, pipe, _hostile(name, inputs), f"{name} {m}x{n} hostile")


def _strided(v: torch.Tensor) -> torch.Tensor:
    """``v`` as a non-contiguous view: every other row of a wider buffer, at an offset."""
    big = torch.zeros((v.shape[0] * 2,) + tuple(v.shape[1:-1]) + (v.shape[-1] + 24,),
                      dtype=v.dtype)
    big[::2, ..., 8:8 + v.shape[-1]] = v
    out = big[::2, ..., 8:8 + v.shape[-1]]
    assert not out.is_contiguous() or not out.numel()
    return out


@pytest.mark.parametrize("name", ["flatten_group_fp8", "moe_sort_mxfp4",
                                  "reduce_act_mul_group_fp8", "moe_smoothquant_i8"])
def test_strided_inputs(name):
    tp, pipe = PIPES[name], QuantPipeline(PIPES[name], backend="rocdl")
    inputs = random_inputs(tp, ROW_EXAMPLES[name](6, 128), seed=9)
    wide = {k: _strided(v) if isinstance(v, torch.Tensor) and v.dim() >= 2 and
            v.is_floating_point() else v for k, v in inputs.items()}
    _agree(tp, pipe, wide, name)


# ---------------------------------------------------------------- the option space
OPTION_CASES = {
    # gather: plain ids (i64, beyond i32 too), an f16 x, the value stored as it is
    "gather": ("def p(x: f16[M, N], idx: i64[R]):\n"
               "    g = gather(x, idx)\n    return g, cast(g * 2.0, bf16)\n",
               {"R": 7}),
    "gather_codes": ("def p(x: bf16[M, N], idx: i32[R]):\n"
                     "    g = gather(x, idx, packed_ids=true)\n"
                     "    s = scale(g, fp8_e4m3fn, per_token)\n"
                     "    return round(g, s, fp8_e4m3fn), s\n", {"R": 9}),
    # expert-indexed smooth with i64 ids, a per_1x32 group scale over [M, K, N]
    "smooth_ids": ("def p(x: bf16[M, N], s: f32[E, N], ids: i64[M, K]):\n"
                   "    y = smooth(x, s[ids])\n    t = scale(y, fp8_e4m3fnuz, per_1x32)\n"
                   "    return round(y, t, fp8_e4m3fnuz), t\n", {"E": 4, "K": 3}),
    # rope: both styles, a rotary dim below D, positions outside the table
    "rope_neox": ("def p(x: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[T]):\n"
                  "    return cast(rope(x, cos, sin, pos), bf16)\n", {"T": 5, "H": 3, "P": 6,
                                                                       "R": 8}),
    "rope_gptj_norm": ("def p(x: bf16[T, H, D], w: bf16[D], cos: f32[P, R], sin: f32[P, R],\n"
                       "      pos: i32[T]):\n"
                       "    y = rope(norm(x, w), cos, sin, pos, style=gptj)\n"
                       "    s = scale(y, fp8_e4m3fn, per_token)\n"
                       "    return round(y, s, fp8_e4m3fn), s, y\n",
                       {"T": 4, "H": 2, "P": 5, "R": 16}),
    # act_mul of computed values: after a norm (its statistics over the full width), of a sum
    "act_mul_norm": ("def p(x: bf16[M, N], w: bf16[N]):\n"
                     "    h = act_mul(norm(x, w), act=gelu_tanh)\n"
                     "    s = scale(h, fp8_e4m3fn, per_token)\n"
                     "    return round(h, s, fp8_e4m3fn), s\n", {}),
    "act_mul_sum": ("def p(x: bf16[M, N], y: bf16[M, N]):\n"
                    "    h = act_mul(x * 0.5 + y, act=silu)\n"
                    "    s = scale(h, fp4_e2m1, mx)\n"
                    "    return pack(round(h, s, fp4_e2m1)), s\n", {}),
    # reduce of one split and of many, flatten of an elementwise value
    "reduce_one": ("def p(x: f32[S, M, N]):\n    return cast(reduce(x), bf16), reduce(x)\n",
                   {"S": 1}),
    "reduce_many": ("def p(x: f32[S, M, N]):\n    return reduce(x)\n", {"S": 5}),
    "flatten_mul": ("def p(x: bf16[M, A, B], w: bf16[B]):\n"
                    "    f = flatten(x * w)\n    s = scale(f, i8, per_token)\n"
                    "    return round(f, s, i8), s\n", {"A": 3}),
    # shuffle with a pad byte, G not a multiple of 8
    "shuffle_pad": ("def p(x: bf16[M, N]):\n    s = scale(x, fp4_e2m1, mx, e8m0=floor)\n"
                    "    return pack(round(x, s, fp4_e2m1)), shuffle(s, pad=127)\n", {}),
    # outputs over two widths in one kernel: a column loop each (N/2 with its groups, N)
    "two_widths": ("def p(x: bf16[M, N]):\n    h = act_mul(x, act=silu)\n"
                   "    s = scale(h, fp8_e4m3fn, per_1x32)\n"
                   "    return round(h, s, fp8_e4m3fn), s, cast(x * 2.0, bf16), x\n", {}),
    # AITER's e8m0_shuffle of a scale given as a parameter (a layout kernel of its own)
    "shuffle_given": ("def p(x: e8m0[M, N]):\n    return shuffle(x, pad=255)\n", {}),
    # E2M1 ties away from zero (AITER's MoE-sort rounding)
    "e2m1_half_up": ("def p(x: bf16[M, N]):\n    s = scale(x, fp4_e2m1, mx, e8m0=floor)\n"
                     "    q = round(x, s, fp4_e2m1, mode=half_up)\n"
                     "    return pack(q), s\n", {}),
}


def _option_dims(extra: dict, m: int, n: int) -> dict:
    dims = {"M": m, "N": n, "T": m, "D": n, "B": n // 3 or 1}
    dims.update(extra)
    return dims


def _ties(inputs: dict) -> dict:
    """Rows of exact E2M1 ties (with an amax of 4: scale 1 under e8m0=floor)."""
    x = inputs.get("x")
    if x is None or x.dim() != 2 or x.shape[0] < 2:
        return inputs
    row = torch.tensor([4.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -2.5, -5.0, 6.5,
                        -0.75, 0.125, -3.5, 1.0] * 2)
    x = x.clone()
    n = min(x.shape[1], row.numel())
    x[1, :n] = row[:n].to(x.dtype)
    return {**inputs, "x": x}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_option_space(case):
    src, extra = OPTION_CASES[case]
    tp = next(iter(load_source(src).values()))
    pipe = QuantPipeline(tp, backend="rocdl")
    for m, n in [(4, 96), (1, 64), (0, 32), (33, 44)]:
        inputs = random_inputs(tp, _option_dims(extra, m, n), seed=m * 3 + n)
        _agree(tp, pipe, inputs, f"{case} {m}x{n}")
        _agree(tp, pipe, _hostile(case, _ties(inputs)), f"{case} {m}x{n} hostile")


def test_reduce_keeps_signed_zeros_and_the_order():
    tp = next(iter(load_source(OPTION_CASES["reduce_many"][0]).values()))
    x = torch.tensor([[[-0.0, 1e30, 1.0]], [[-0.0, -1e30, 2.0 ** -24]], [[-0.0, 1.0, 2.0 ** -24]],
                      [[-0.0, 0.0, 0.0]], [[-0.0, 0.0, 0.0]]])
    got = QuantPipeline(tp, backend="rocdl")(x=x, _as_dict=True)
    want = run_pipeline(tp, {"x": x})
    for k in want:
        assert torch.equal(got[k].view(torch.int32), want[k].view(torch.int32)), k
    assert str(got[next(iter(got))][0, 0].item()) == "-0.0"


def test_e2m1_half_up_codes_match_the_reference(monkeypatch):
    # test_numerics' conversion kernel, built (uncached) with the half_up rounding
    import test_numerics as tn
    from qfuse.backends.rocdl import numerics as nx
    real = nx.e2m1_code
    monkeypatch.setattr(nx, "e2m1_code", lambda e, v, native=False, mode=None:
                        real(e, v, native, RoundMode.HALF_UP))
    kernel = tn._kernel.__wrapped__(("e2m1",))
    x = torch.cat([tn._values(6), torch.arange(-64, 64) * 0.125])
    out = torch.empty(x.shape, dtype=torch.int32)
    kernel([x, out])
    want = ref.encode_e2m1(x, RoundMode.HALF_UP).to(torch.int64)
    assert torch.equal(out.to(torch.int64) & 0xFFFFFFFF, want)
    assert not torch.equal(want, ref.encode_e2m1(x).to(torch.int64))    # ties are in x


# ---------------------------------------------------------------- refusals and the ladder
def test_a_computed_gather_source_is_refused_by_name():
    src = "def p(x: bf16[M, N], idx: i32[R]):\n    return gather(x * 2.0, idx)\n"
    tp = next(iter(load_source(src).values()))
    try:
        compile_pipeline(tp, "rocdl", "cpu:interp")
    except QfuseError as e:           # the fusion pass may already split it off
        assert "gather" in str(e) and "kernel input" in str(e), str(e)


LADDER = ["flatten_group_fp8", "moe_smoothquant_i8", "moe_sort_mxfp4",
          "reduce_act_mul_group_fp8", "rmsnorm_mxfp4_shuffle"]


def test_the_gpu_form_lowers():
    """Each pipeline compiled for no target in particular (every GPU form, no binaries),
    then converted for each chip: convert-gpu-to-rocdl (gfx942, gfx950), -nvvm (sm_90)."""
    srcs = [PIPES[n] for n in LADDER] + [next(iter(load_source(OPTION_CASES[c][0]).values()))
                                         for c in ("rope_gptj_norm", "act_mul_norm",
                                                   "gather", "e2m1_half_up")]
    for tp in srcs:
        for step in compile_pipeline(tp, "rocdl", "any").steps:
            for target, text in step.source.gpu.items():
                lowered = gpu_stage(text, parse_target(target))
                assert ("rocdl." if target.startswith("hip") else "nvvm.") in lowered, \
                    (tp.name, target)


@pytest.mark.parametrize("mrope,h,w", [("chunked", 3, 2), ("interleaved", 2, 2),
                                       ("chunked", 0, 0)])
def test_mrope_sections(mrope, h, w):
    src = ("def p(x: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[3, T]):\n"
           f"    y = rope(x, cos, sin, pos, style=gptj, mrope={mrope}, mrope_h={h}, "
           f"mrope_w={w})\n    return cast(y, bf16)\n")
    tp = next(iter(load_source(src).values()))
    pipe = QuantPipeline(tp, backend="rocdl")
    for t in (5, 1, 0):
        inputs = random_inputs(tp, {"T": t, "H": 2, "D": 24, "P": 7, "R": 8}, seed=t)
        if t > 1:
            inputs["pos"][1, 0], inputs["pos"][2, 1] = -1, 7          # outside the table
        _agree(tp, pipe, inputs, f"{mrope} T={t}")
