"""The catalog's newer options and stages on the ROCDL backend, through the CPU twin
against the reference: ``scale(pow2=true)`` (power-of-two scales, every fp32 pattern class
as a scale), ``pack(order=even_odd)``, ``unpack`` (both orders, int4 and E2M1),
``gather(topk > 1)`` with hostile packed ids, and the ``dequant`` stage (every fp8 byte,
each code format and granularity, codes computed in the same kernel)."""
from __future__ import annotations

import torch

from qfuse.backends.reference import numerics as ref
from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.dsl import load_source
from qfuse.runtime.compare import compare_outputs
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline


def _same(src: str, inputs_for) -> None:
    tp = next(iter(load_source(src).values()))
    pipe = QuantPipeline(tp, backend="rocdl")
    for inputs in inputs_for(tp):
        ok, msg = compare_outputs(pipe(**inputs, _as_dict=True), run_pipeline(tp, inputs), 0)
        assert ok and msg == "exact", f"{src}: {msg}"


def test_pow2_scales_of_every_pattern_class():
    # dtype_max = 1: the scale is the row's amax itself, so each row tests one pattern
    vals = torch.cat([torch.tensor([0.0, 1.0, 1.5, 3.0, 2.0 ** -126, 2.0 ** -127 * 3, 1e-45,
                                    2.0 ** -149 * 5, 2.0 ** 127, 2.0 ** 127 * 1.5, 3.4e38,
                                    float("inf"), float("nan"), 0.75, 448.0, 7e-39]),
                      ref.bits_f32(torch.randint(0, 0x7F800000, (48,),
                                                 generator=torch.Generator().manual_seed(1)))])
    x = torch.zeros(vals.numel(), 5)
    x[:, 2] = vals
    _same("def p(x: f32[M, N]):\n    s = scale(x, i8, per_token, dtype_max=1.0, zero=zero, "
          "pow2=true)\n    return s\n", lambda tp: [{"x": x}])
    _same("def p(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_1x128, pow2=true)\n"
          "    return round(x, s, fp8_e4m3fn), s\n",
          lambda tp: [random_inputs(tp, {"M": m, "N": n}, seed=m) for m, n in
                      [(3, 300), (1, 128), (0, 16)]])


def test_pack_even_odd_and_unpack():
    _same("def p(x: bf16[M, N]):\n    s = scale(x, fp4_e2m1, mx)\n"
          "    return pack(round(x, s, fp4_e2m1), order=even_odd), s\n",
          lambda tp: [random_inputs(tp, {"M": m, "N": n}, seed=n) for m, n in
                      [(3, 96), (1, 8), (0, 64)]])
    _same("def p(x: bf16[M, N]):\n    s = scale(x, int4, per_1x32)\n"
          "    return pack(round(x, s, int4), order=even_odd), s\n",
          lambda tp: [random_inputs(tp, {"M": 2, "N": 64}, seed=2)])

    def every_byte(tp):
        b = torch.arange(256, dtype=torch.uint8).reshape(8, 32)
        return [{"b": b}, {"b": b[:, 4:12]}, {"b": b[:0]}]        # strided, empty
    _same("def p(b: u8[M, B]):\n    return unpack(b, dtype=int4), "
          "unpack(b, dtype=fp4_e2m1, order=even_odd)\n", every_byte)
    _same("def p(b: u8[M, B]):\n    return unpack(b, dtype=fp4_e2m1), "
          "unpack(b, dtype=int4, order=even_odd)\n", every_byte)


def test_gather_topk_with_hostile_packed_ids():
    def inputs(tp):
        x = torch.randn(3 * 4, 40).to(torch.bfloat16)             # 4 tokens, topk = 3
        ids = torch.tensor([0, 1 | 1 << 24, 3 | 2 << 24, 2 | 3 << 24, -1, 5, 3 | 7 << 24,
                            (1 << 24) - 1, 2 | 1 << 24], dtype=torch.int64)
        return [{"x": x, "idx": ids.to(torch.int32)}, {"x": x, "idx": ids},
                {"x": x[:0], "idx": ids.to(torch.int32)}]
    _same("def p(x: bf16[M, N], idx: i32[R]):\n"
          "    return gather(x, idx, packed_ids=true, topk=3)\n",
          lambda tp: inputs(tp)[:1] + inputs(tp)[2:])
    _same("def p(x: bf16[M, N], idx: i64[R]):\n"
          "    return gather(x, idx, packed_ids=true, topk=3)\n", lambda tp: inputs(tp)[1:2])


def test_the_gpu_form_lowers():
    from qfuse.backends.base import parse_target
    from qfuse.backends.rocdl.lower import gpu_stage
    from qfuse.runtime.compiler import compile_pipeline
    for src in ["def p(x: bf16[M, N]):\n    s = scale(x, fp4_e2m1, mx)\n"
                "    return pack(round(x, s, fp4_e2m1), order=even_odd), s\n",
                "def p(b: u8[M, B]):\n    return unpack(b, dtype=int4, order=even_odd)\n",
                "def p(x: bf16[M, N], idx: i32[R]):\n"
                "    return gather(x, idx, packed_ids=true, topk=3)\n",
                "def p(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_1x128, pow2=true)\n"
                "    return round(x, s, fp8_e4m3fn), s\n",
                "def p(q: fp8_e4m3fnuz[M, N], s: e8m0[M, cdiv(N, 32)]):\n"
                "    return dequant(q, s, dtype=bf16)\n",
                "def p(x: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[3, T]):\n"
                "    return rope(x, cos, sin, pos, mrope=interleaved, mrope_h=2, mrope_w=2)\n"]:
        for step in compile_pipeline(next(iter(load_source(src).values())), "rocdl",
                                     "any").steps:
            for target, text in step.source.gpu.items():
                assert "llvm.func" in gpu_stage(text, parse_target(target)), (src, target)


def test_dequant_every_code_format_and_granularity():
    every = torch.arange(256, dtype=torch.uint8).reshape(4, 64)           # NaN codes, -0
    _same("def p(q: fp8_e4m3fn[M, N], s: f32[M, 1]):\n"
          "    return dequant(q, s, granularity=per_token, dtype=bf16)\n",
          lambda tp: [{"q": every.view(torch.float8_e4m3fn), "s": torch.rand(4, 1) + 0.5}])
    _same("def p(q: fp8_e4m3fnuz[M, N], s: f32[M, cdiv(N, 32)]):\n"
          "    return dequant(q, s, granularity=per_1x32)\n",
          lambda tp: [{"q": every.view(torch.float8_e4m3fnuz), "s": torch.rand(4, 2) + 0.5}])
    _same("def p(q: fp8_e4m3fn[M, N]):\n    return dequant(q)\n",
          lambda tp: [{"q": every.view(torch.float8_e4m3fn)}])
    # a round trip in one kernel: codes computed, then decoded with their mx / group scale
    for target, gran in [("fp4_e2m1", "mx"), ("int4", "per_1x32"), ("i8", "per_1x64"),
                         ("fp8_e4m3fnuz", "per_token"), ("fp8_e4m3fn", "mx")]:
        _same(f"def p(x: bf16[M, N]):\n    s = scale(x, {target}, {gran})\n"
              f"    q = round(x, s, {target})\n"
              f"    return dequant(q, s, granularity={gran}, dtype=f16), s\n",
              lambda tp: [random_inputs(tp, {"M": m, "N": n}, seed=n) for m, n in
                          [(3, 100), (1, 64), (0, 32)]])
