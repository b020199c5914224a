"""The ROCDL backend's code conversions (qfuse/backends/rocdl/numerics.py) against the
reference numerics, bit for bit, on every fp32 pattern class that matters: zeros of both
signs, subnormals, ties of each format, the format max and just past it, inf, NaN, and
random bit patterns (hypothesis). Each conversion is one small loop kernel run by the
CPU twin over a vector of inputs."""
from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from qfuse.backends.reference import numerics as ref
from qfuse.backends.rocdl import numerics as nx
from qfuse.backends.rocdl.cpu import CpuKernel
from qfuse.backends.rocdl.emit import Emitter
from qfuse.backends.rocdl.kernel import ArgSpec
from qfuse.dialect.options import E8M0Mode, QuantTarget, RoundMode

MEM = "memref<?xf32, strided<[?], offset: ?>>"
OUT = "memref<?xi32, strided<[?], offset: ?>>"


@functools.lru_cache(maxsize=None)
def _kernel(key: tuple) -> CpuKernel:
    """A CPU kernel: out[i] = conversion(x[i]) (i32 codes)."""
    kind, *opts = key
    e = Emitter()
    i = "%i"
    with e.block(f"scf.for {i} = {e.idx(0)} to %n step {e.idx(1)} {{"):
        x = e.op(f"memref.load %x[{i}] : {MEM}")
        if kind == "fp8":
            target, dmax, sat = opts
            y = nx.fp8_code(e, x, target, dmax, sat, native=False)
        elif kind == "int":
            mode, lo, hi = opts
            y = nx.int_code(e, x, mode, lo, hi)
        elif kind == "e2m1":
            y = nx.e2m1_code(e, x)
        elif kind == "e8m0":
            mode, target = opts
            y = nx.e8m0_byte(e, x, mode, target)
        elif kind == "bf16":
            y = e.cast("extui", nx.round_bf16_bits(e, x), "i16", "i32")
        elif kind == "f16":
            y = e.cast("extui", nx.round_f16_bits(e, x), "i16", "i32")
        else:
            raise AssertionError(kind)
        e.line(f"memref.store {y}, %o[{i}] : {OUT}")
    head = ("    %zero = arith.constant 0 : index\n"
            f"    %n = memref.dim %x, %zero : {MEM}\n")
    text = (f"module {{\n  func.func @conv(%x: {MEM}, %o: {OUT}) attributes "
            f"{{llvm.emit_c_interface}} {{\n{head}{e.text(2)}\n    return\n  }}\n}}\n")
    return CpuKernel("conv", text, [ArgSpec("x", "f32", 1), ArgSpec("o", "i32", 1, True)])


def _run(key: tuple, x: torch.Tensor) -> torch.Tensor:
    out = torch.empty(x.shape, dtype=torch.int32)
    _kernel(key)([x.contiguous(), out])
    return out.to(torch.int64) & 0xFFFFFFFF


def _edges() -> torch.Tensor:
    """fp32 values at every boundary the formats have, both signs."""
    vals = [0.0, 1e-45, 2.0 ** -149, 2.0 ** -126, 2.0 ** -127, 2.0 ** -10, 2.0 ** -9,
            2.0 ** -7, 2.0 ** -6, 2.0 ** -8 * 1.5, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0,
            7.0, 240.0, 247.99998, 248.0, 256.0, 448.0, 464.0, 464.00003, 480.0, 1e30,
            65504.0, 65520.0, 3.4028235e38, 1.0 + 2.0 ** -8, 1.0 + 2.0 ** -9, 127.5, 126.5,
            -0.5, 0.5, 1.5, 7.5, 8.5, float("inf"), float("nan")]
    base = torch.tensor(vals, dtype=torch.float32)
    bits = torch.tensor([0x7F7FFFFF, 0x00000001, 0x007FFFFF, 0x3F808000, 0x3F818000,
                         0x7FC00001, 0x7F800001, 0x43E80000], dtype=torch.int64)
    return torch.cat([base, -base, ref.bits_f32(bits), ref.bits_f32(bits | 0x80000000)])


def _random(seed: int, n: int = 4096) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ref.bits_f32(torch.randint(0, 2 ** 32, (n,), generator=g, dtype=torch.int64))


def _values(seed: int) -> torch.Tensor:
    return torch.cat([_edges(), _random(seed), torch.randn(2048) * 300])


FP8 = [(QuantTarget.FP8_E4M3FN, 448.0, True), (QuantTarget.FP8_E4M3FN, 448.0, False),
       (QuantTarget.FP8_E4M3FN, 200.0, True), (QuantTarget.FP8_E4M3FNUZ, 240.0, True),
       (QuantTarget.FP8_E4M3FNUZ, 224.0, True), (QuantTarget.FP8_E4M3FNUZ, 240.0, False)]


@pytest.mark.parametrize("target,dmax,sat", FP8)
def test_fp8_codes_match_the_reference(target, dmax, sat):
    x = _values(1)
    want = ref.round_fp8(x, target, dmax, sat).view(torch.uint8).to(torch.int64)
    assert torch.equal(_run(("fp8", target, dmax, sat), x), want)


@pytest.mark.parametrize("mode", [RoundMode.TRUNC, RoundMode.RNE])   # the integer modes
@pytest.mark.parametrize("bounds", [(-127, 127), (-128, 127), (-7, 7), (-8, 7)])
def test_int_codes_match_the_reference(mode, bounds):
    x = torch.cat([_values(2), torch.arange(-300, 300) * 0.5])
    want = ref.round_int(x, mode, *bounds).to(torch.int64) & 0xFFFFFFFF
    assert torch.equal(_run(("int", mode, *bounds), x), want)


def test_e2m1_codes_match_the_reference():
    x = torch.cat([_values(3), torch.arange(-64, 64) * 0.125])
    assert torch.equal(_run(("e2m1",), x), ref.encode_e2m1(x).to(torch.int64))


@pytest.mark.parametrize("mode", list(E8M0Mode))
@pytest.mark.parametrize("target", [QuantTarget.FP4_E2M1, QuantTarget.FP8_E4M3FN,
                                    QuantTarget.FP8_E4M3FNUZ])
def test_e8m0_bytes_match_the_reference(mode, target):
    x = _values(4).abs()          # an amax: >= 0 or NaN
    want = ref.e8m0_byte(x, mode, target).to(torch.int64)
    assert torch.equal(_run(("e8m0", mode, target), x), want)


def test_bf16_and_f16_rounding_match_torch():
    x = _values(5)
    got_bf = _run(("bf16",), x)
    got_h = _run(("f16",), x)
    want_bf = ref.round_to_float(x, "bf16").view(torch.int16).to(torch.int64) & 0xFFFF
    want_h = ref.round_to_float(x, "f16").view(torch.int16).to(torch.int64) & 0xFFFF
    assert torch.equal(got_bf, want_bf)
    assert torch.equal(got_h, want_h)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=64))
def test_random_patterns_fp8_and_e2m1(patterns):
    x = ref.bits_f32(torch.tensor(patterns, dtype=torch.int64))
    t = QuantTarget.FP8_E4M3FN
    assert torch.equal(_run(("fp8", t, 448.0, False), x),
                       ref.round_fp8(x, t, 448.0, False).view(torch.uint8).to(torch.int64))
    assert torch.equal(_run(("e2m1",), x), ref.encode_e2m1(x).to(torch.int64))
