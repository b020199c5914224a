"""``qfuse.aiter.utility.fp4_utils`` and ``qfuse.aiter.int4_utils`` against oracles written
again from aiter-semantics.md / AITER's code (struct-level bit arithmetic per element),
edge values included; the kernels (``e8m0_shuffle``, ``convert_int8_to_uint32_int4``) on
both backends."""
from __future__ import annotations

import math
import struct

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import backends, on, same_bits
from qfuse.aiter import AiterArgumentError, dtypes, int4_utils
from qfuse.aiter.utility import fp4_utils as F
from qfuse.aiter.utility.mx_types import MxDtype, MxScaleRoundMode

EDGE = [0.0, -0.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.9, 6.0, 7.0, -0.1, -2.5, 1e-40,
        1.5, 3.0 * 2 ** -20, 1.75 * 2 ** 100, 3e38, float("inf"), float("-inf"), float("nan")]


def f32bits(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def bitsf32(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]


def fdiv(a: float, b: float) -> float:
    return (torch.tensor(a, dtype=torch.float32) / torch.tensor(b, dtype=torch.float32)).item()


def test_f32_to_mxfp4_and_back():
    x = torch.tensor(EDGE + [0.0] * (-len(EDGE) % 4)).view(2, -1)
    got = F.f32_to_mxfp4(x)
    assert got.dtype == dtypes.fp4x2 and got.shape == (2, x.shape[1] // 2)
    want = O.pack(O.e2m1(x))                     # RNE, saturating; NaN -> 7 (qfuse's rule)
    same_bits(got.view(torch.uint8), want, "codes")
    back = F.mxfp4_to_f32(got)
    table = [0, .5, 1, 1.5, 2, 3, 4, 6]
    flat = [table[c & 7] * (-1.0 if c & 8 else 1.0)
            for b in want.view(-1).tolist() for c in (b & 0xF, b >> 4)]
    same_bits(back, torch.tensor(flat).view(2, -1), "values")
    assert F.mxfp4_to_f32(torch.tensor([0x88], dtype=torch.uint8)).tolist() == [-0.0, -0.0]


def test_f32_to_e8m0_and_e8m0_to_f32():
    x = torch.tensor(EDGE)
    want = [255 if (f32bits(v) >> 23) & 0xFF == 255 else (f32bits(v) >> 23) & 0xFF
            for v in x.tolist()]
    got = F.f32_to_e8m0(x)
    assert got.dtype == dtypes.fp8_e8m0
    assert got.view(torch.uint8).tolist() == want
    b = torch.arange(256, dtype=torch.uint8)
    want = [bitsf32(0x00400000 if v == 0 else 0x7F800001 if v == 255 else v << 23)
            for v in range(256)]
    got = F.e8m0_to_f32(b.view(dtypes.fp8_e8m0))
    same_bits(got[:255], torch.tensor(want[:255]), "e8m0 values")
    assert math.isnan(got[255].item())
    assert got.view(torch.int32)[255].item() == 0x7F800001        # AITER's NaN pattern


def _mx_scale_oracle(a: float, mode: int, dt: int) -> int:
    pow2, max_pos, mbits = {0: (2, 6.0, 1), 1: (8, 448.0, 3), 2: (7, 240.0, 3)}[dt]

    def field(v, ceil):
        bits = f32bits(v)
        e = (bits >> 23) & 0xFF
        if ceil and bits & 0x7FFFFF and e < 255:
            e += 1
        return e
    if mode == 1:
        return field(fdiv(a, max_pos), True)
    if mode == 0:
        return field(fdiv(a, 2.0 ** pow2), False)
    if mode == 3:
        return field(fdiv(a, 2.0 ** pow2), True)
    r = bitsf32((f32bits(a) + (1 << (22 - mbits))) & 0xFF800000)
    return field(fdiv(r, 2.0 ** pow2), False)


@pytest.mark.parametrize("mode", list(MxScaleRoundMode))
@pytest.mark.parametrize("dt", list(MxDtype))
def test_f32_to_mx_e8m0_scale(mode, dt):
    amax = torch.tensor([abs(v) for v in EDGE] + [448.0, 240.0, 1.5 * 2 ** -126, 2 ** -149,
                                                  6.0 * 2 ** 127])
    got = F.f32_to_mx_e8m0_scale(amax, mode=mode, dtype=dt).view(torch.uint8).tolist()
    want = [_mx_scale_oracle(v, int(mode), int(dt)) for v in amax.tolist()]
    assert got == want
    assert F.f32_to_mx_e8m0_scale(amax, mode=int(mode), dtype=int(dt)).view(
        torch.uint8).tolist() == want


def test_f32_to_mx_e8m0_scale_bad_arguments():
    with pytest.raises(AiterArgumentError, match="mode"):
        F.f32_to_mx_e8m0_scale(torch.ones(2), mode=7)
    with pytest.raises(AiterArgumentError, match="dtype"):
        F.f32_to_mx_e8m0_scale(torch.ones(2), dtype=5)


@backends
@pytest.mark.parametrize("m,n", [(5, 3), (300, 9), (1, 8), (0, 4)])
def test_e8m0_shuffle(backend, m, n):
    s = torch.randint(0, 256, (m, n), dtype=torch.uint8)
    for t in (s, s.view(dtypes.fp8_e8m0)):
        got = on(backend, F.e8m0_shuffle, t)
        assert got.dtype == t.dtype
        same_bits(got.view(torch.uint8), O.shuffle(s), "shuffled")
    f = torch.rand(3, 4)
    assert F.e8m0_shuffle(None) is None and F.e8m0_shuffle(f) is f


def _words(q: torch.Tensor) -> list:
    flat = q.reshape(-1, 8).tolist()
    return [sum((v & 0xF) << (4 * j) for j, v in enumerate(w)) for w in flat]


@backends
def test_convert_int8_to_uint32_int4(backend):
    q = torch.randint(-128, 128, (2, 3, 24), dtype=torch.int8)   # any byte: its low nibble
    got = on(backend, int4_utils.convert_int8_to_uint32_int4, q)
    assert got.dtype == torch.uint32 and got.shape == (2, 3, 3)
    assert (got.view(torch.int32).to(torch.int64) & 0xFFFFFFFF).view(-1).tolist() == _words(q)
    with pytest.raises(AiterArgumentError, match="int8"):
        int4_utils.convert_int8_to_uint32_int4(q.to(torch.int16))
    with pytest.raises(AiterArgumentError, match="multiple of 8"):
        int4_utils.convert_int8_to_uint32_int4(q[..., :12])


def _rearranged(w: int) -> int:
    """AITER's masks and shifts, on an unsigned 32-bit word."""
    return ((w & 0xF0000000) | ((w & 0x00F00000) << 4) | ((w & 0x0000F000) << 8)
            | ((w & 0x000000F0) << 12) | ((w & 0x0F000000) >> 12) | ((w & 0x000F0000) >> 8)
            | ((w & 0x00000F00) >> 4) | (w & 0x0000000F)) & 0xFFFFFFFF


@backends
def test_rearrange_4bit_elements_is_pack_even_odd(backend):
    g = torch.Generator().manual_seed(3)
    words = torch.randint(-2 ** 31, 2 ** 31, (4, 5), generator=g, dtype=torch.int64)
    words[0, :3] = torch.tensor([-1, 0x76543210, -2 ** 31])
    t = words.to(torch.int32).view(torch.uint32)
    got = int4_utils.rearrange_4bit_elements(t)
    assert got.dtype == torch.uint32
    want = [_rearranged(w & 0xFFFFFFFF) for w in words.view(-1).tolist()]
    assert (got.view(torch.int32).to(torch.int64) & 0xFFFFFFFF).view(-1).tolist() == want
    # on words packed from codes it is the DSL's pack(order=even_odd), written directly
    from qfuse.dsl import load_source
    from qfuse.runtime.pipeline import QuantPipeline
    tp = load_source("def p(q: int4[M, K]):\n    return pack(q, order=even_odd)\n")["p"]
    q = torch.randint(-8, 8, (3, 32), dtype=torch.int8)
    direct = QuantPipeline(tp, backend=backend)(q).contiguous().view(torch.uint32)
    two_step = int4_utils.rearrange_4bit_elements(
        on(backend, int4_utils.convert_int8_to_uint32_int4, q))
    assert torch.equal(direct.view(torch.int32), two_step.view(torch.int32))
    # and on any words: the DSL's pack(unpack(w, int4), order=even_odd)
    tp = load_source("def p(w: u8[M, B]):\n    return pack(unpack(w, int4), order=even_odd)\n")["p"]
    via_dsl = QuantPipeline(tp, backend=backend)(t.view(torch.uint8)).contiguous()
    assert torch.equal(via_dsl.view(torch.int32), got.view(torch.int32))


@backends
def test_mxfp4_to_f32_is_dequant_of_unpacked_codes(backend):
    from qfuse.dsl import load_source
    from qfuse.runtime.pipeline import QuantPipeline
    tp = load_source("def p(w: u8[M, B]):\n    return dequant(unpack(w, fp4_e2m1))\n")["p"]
    w = torch.arange(256, dtype=torch.uint8).view(8, 32)
    same_bits(QuantPipeline(tp, backend=backend)(w), F.mxfp4_to_f32(w), "values")


def test_empty_inputs_keep_their_shapes():
    assert int4_utils.convert_int8_to_uint32_int4(
        torch.zeros(0, 3, 16, dtype=torch.int8)).shape == (0, 3, 2)
    assert int4_utils.convert_int8_to_uint32_int4(torch.zeros(2, 0, dtype=torch.int8)).shape \
        == (2, 0)
    assert F.mxfp4_to_f32(torch.zeros(0, 4, dtype=torch.uint8)).shape == (0, 8)
    assert F.f32_to_mxfp4(torch.zeros(3, 0)).shape == (3, 0)
