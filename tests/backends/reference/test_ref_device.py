"""The reference backend gives the same bits on a GPU as on the CPU (skipped without CUDA).

Exact everywhere except the documented order-dependent norm sums and the exp/erf/tanh of
silu/gelu, which are compared within a few ulp.
"""
from __future__ import annotations

import pytest
import torch

from qfuse.backends.reference import numerics as nu
from qfuse.backends.reference import run_pipeline
from qfuse.backends.reference.stages import run_cache_write, run_shuffle
from qfuse.dialect.options import QuantTarget
from qfuse.dialect.stages import STAGES

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    b = b.cpu()
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() and a.element_size() == 4:
        return torch.equal(a.view(torch.int32), b.view(torch.int32))
    if a.element_size() == 2 and a.is_floating_point():
        return torch.equal(a.view(torch.int16), b.view(torch.int16))
    if a.element_size() == 1:
        return torch.equal(a.view(torch.uint8), b.view(torch.uint8))
    return torch.equal(a, b)


def special_values(n=20000, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rand_bits = torch.randint(-2 ** 31, 2 ** 31 - 1, (n,), generator=g, dtype=torch.int64)
    v = nu.bits_f32(rand_bits)                                  # every class of fp32
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 464.0, 248.0, 2.0 ** -10,
                         float("inf"), -float("inf"), -0.0, 0.0, float("nan")])
    scaled = torch.randn(n, generator=g) * torch.exp2(torch.randint(-20, 12, (n,), generator=g).float())
    return torch.cat([v, mids, -mids, scaled])


def test_primitives_match_cpu():
    v = special_values()
    d = v.cuda()
    for fmt, dm in (("fp8_e4m3fn", 448.0), ("fp8_e4m3fnuz", 240.0)):
        for sat in (True, False):
            assert bits_equal(nu.round_fp8(v, fmt, dm, sat), nu.round_fp8(d, fmt, dm, sat))
    assert bits_equal(nu.encode_e2m1(v), nu.encode_e2m1(d))
    a = v.abs()
    for target in (t for t in QuantTarget if t.e8m0):
        for mode in ("floor", "ceil", "even", "roundup", "rne_legacy"):
            assert bits_equal(nu.e8m0_byte(a, mode, target), nu.e8m0_byte(a.cuda(), mode, target)), mode
    for mode in ("trunc", "rne"):
        assert bits_equal(nu.round_int(v, mode, -127, 127), nu.round_int(d, mode, -127, 127))
    for dt in ("bf16", "f16"):
        assert bits_equal(nu.round_to_float(v, dt), nu.round_to_float(d, dt))
    b = torch.arange(256, dtype=torch.int64).to(torch.uint8)
    assert bits_equal(nu.e8m0_to_f32(b), nu.e8m0_to_f32(b.cuda()))
    codes = torch.randint(0, 16, (64, 34), dtype=torch.uint8)
    assert bits_equal(nu.pack_nibbles(codes), nu.pack_nibbles(codes.cuda()))
    s = torch.randint(0, 256, (300, 11), dtype=torch.uint8)
    assert bits_equal(run_shuffle(s, pad=127)[0], run_shuffle(s.cuda(), pad=127)[0])


@pytest.mark.parametrize("quant", ["per_token", "per_block"])
def test_cache_write_matches_cpu(quant):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 2, 32, generator=g).to(torch.bfloat16)
    cache = torch.randn(4, 2, 2, 16, 16, generator=g).to(torch.float8_e4m3fn)
    slots = torch.tensor([3, -1, 17, 18, 19, 40, 63, 0, 5])
    scales = torch.rand((2, 64) if quant == "per_token" else (2, 4), generator=g) * 0.01
    cpu = run_cache_write(x, cache, slots, scales, layout="key", quant=quant, dtype_max=448.0)
    gpu = run_cache_write(x.cuda(), cache.cuda(), slots.cuda(), scales.cuda(), layout="key",
                          quant=quant, dtype_max=448.0)
    assert all(bits_equal(a, b) for a, b in zip(cpu, gpu))


def example_cases():
    from test_ref_interpreter import example_pipelines
    return example_pipelines()


@pytest.mark.parametrize("tp", example_cases())
def test_examples_match_cpu(tp):
    from test_ref_interpreter import example_inputs
    inputs, _ = example_inputs(tp, torch.Generator().manual_seed(7))
    cpu = run_pipeline(tp, inputs)
    gpu = run_pipeline(tp, inputs, device="cuda")
    exact = not any(STAGES[c.stage].inexact for c in tp.calls)
    for name in cpu:
        a, b = cpu[name], gpu[name]
        assert b.device.type == "cuda", name
        if exact:
            assert bits_equal(a, b), name
        elif a.is_floating_point() and a.element_size() > 1:
            torch.testing.assert_close(b.cpu().float(), a.float(), rtol=2e-6, atol=1e-6)
        else:                           # codes: a boundary may move by one step, rarely
            ab, bb = a.view(torch.uint8) if a.element_size() == 1 else a, b.cpu()
            bb = bb.view(torch.uint8) if bb.element_size() == 1 else bb
            assert (ab != bb).float().mean().item() <= 0.01, name
