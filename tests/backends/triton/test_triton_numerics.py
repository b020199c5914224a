"""qfuse.backends.triton.numerics, bit for bit against independent oracles.

Runs every helper in the Triton interpreter (and natively when a CUDA GPU is present:
then NATIVE=True uses the hardware fp8 convert) on edge values and random values."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_triton_testlib import (COLS, DEVICES, E2M1_GRID, SPECIALS, bits_of, e2m1_oracle, e8m0_edge_values,
                               e8m0_oracle, f32, fp8_magnitudes, fp8_oracle, int_oracle, k_amax, k_div_bounded, k_divcodes, k_divsqrt,
                               k_e2m1, k_e2m1_half_up, k_e8m0, k_e8m0_apply, k_fp8, k_int, k_pack, k_round16, launch,
                               run_rows, same_f32, with_neighbours)
from qfuse.backends.triton import numerics as qn
from qfuse.backends.triton.codegen.stages_quant import E8M0_MODE_CODES
from qfuse.dialect.options import E8M0Mode, QuantTarget

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/inf casts in numpy
RNG = np.random.default_rng(1234)


def random_f32(n, lo=-30, hi=30):
    """Random signs, exponents 2^lo..2^hi and mantissas."""
    return (RNG.standard_normal(n) * np.exp2(RNG.integers(lo, hi, n))).astype(np.float32)


def assert_codes(got, want, x, what):
    got = np.asarray(got)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, f"{what}: {bad.size} mismatches, first: " + ", ".join(
        f"x={x[i]!r} (0x{bits_of(x[i]):08x}) got 0x{int(got[i]):02x} want 0x{int(want[i]):02x}" for i in bad[:5])


# ---------------------------------------------------------------- fp8
def fp8_edge_values(fnuz):
    mags = fp8_magnitudes(fnuz, virtual=True)
    mids = (mags[1:] + mags[:-1]) / 2
    extra = [449, 464, 465, 479, 480, 481, 500, 1e6, 224, 232, 236, 240, 244, 247.9, 248, 250, 256,
             2.0 ** -10, 2.0 ** -11, 3 * 2.0 ** -12, 2.0 ** -12, 1e-30]
    return np.concatenate([with_neighbours(np.concatenate([mags, mids, extra])), SPECIALS])


FP8_CASES = [(False, 448.0, True), (False, 448.0, False), (True, 240.0, True), (True, 240.0, False),
             (True, 224.0, True), (False, 300.0, True)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("fnuz,dmax,sat", FP8_CASES)
def test_fp8_edges_and_random(device, native, fnuz, dmax, sat):
    x = np.concatenate([fp8_edge_values(fnuz), random_f32(3000, -14, 10)])
    (got,) = run_rows(k_fp8, device, [x], [torch.uint8], IS_FNUZ=fnuz, DMAX=dmax, SAT=sat, NATIVE=native)
    assert_codes(got.numpy(), fp8_oracle(x, fnuz, dmax, sat), x, f"fp8 fnuz={fnuz} sat={sat}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dmax,sat", [(448.0, True), (300.0, True), (448.0, False)])
def test_fp8_native_every_high_half(dmax, sat):
    """The hardware convert path (NATIVE=True: cvt.rn.satfinite on sm_89+) on every fp32
    upper half (sign, exponent, 7 mantissa bits: all fp8 rounding boundaries, ties, NaN,
    inf, subnormals) with low halves 0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF."""
    hi = np.arange(2 ** 16, dtype=np.uint64) << 16
    x = f32((hi[:, None] + np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], dtype=np.uint64)).ravel())
    (got,) = run_rows(k_fp8, "cuda", [x], [torch.uint8], IS_FNUZ=False, DMAX=dmax, SAT=sat,
                      NATIVE=True)
    assert_codes(got.numpy(), fp8_oracle(x, False, dmax, sat), x, f"native fp8 sat={sat}")


@pytest.mark.parametrize("fnuz", [False, True])
def test_fp8_oracle_agrees_with_torch(fnuz):
    """The numpy oracle against torch's cast where torch is right: in-range values (torch
    2.13's fp32 -> e4m3fn cast saturates, so out-of-range e4m3fn is not compared)."""
    x = np.concatenate([fp8_edge_values(fnuz), random_f32(3000, -14, 10)])
    fmax = 240.0 if fnuz else 448.0
    x = x[~np.isnan(x) & (np.abs(x) <= fmax)]
    dt = torch.float8_e4m3fnuz if fnuz else torch.float8_e4m3fn
    want = torch.from_numpy(x).to(dt).view(torch.uint8).numpy()
    assert_codes(fp8_oracle(x, fnuz, fmax, False), want, x, "oracle vs torch")


@pytest.mark.parametrize("fnuz", [False, True])
def test_fp8_hand_table(fnuz):
    """A few codes by hand from the doc."""
    x = np.concatenate([np.array([1.0, -1.0, 0.0, -0.0, -1e-9, 448.0, 17.0, 19.0, np.nan], np.float32),
                        f32([0xFFC00000])])
    got = run_rows(k_fp8, "interp", [x], [torch.uint8], IS_FNUZ=fnuz, DMAX=240.0 if fnuz else 448.0,
                   SAT=True, NATIVE=False)[0].tolist()
    if fnuz:  # 17 -> 16 (tie, even), 19 -> 20 (tie, odd 18 loses)
        assert got == [0x40, 0xC0, 0x00, 0x00, 0x00, 0x7F, 0x60, 0x62, 0x80, 0x80]
    else:
        assert got == [0x38, 0xB8, 0x00, 0x80, 0x80, 0x7E, 0x58, 0x5A, 0x7F, 0x7F]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=512), st.booleans(), st.booleans())
def test_fp8_random_bit_patterns(patterns, fnuz, sat):
    x = f32(patterns)
    dmax = 240.0 if fnuz else 448.0
    (got,) = run_rows(k_fp8, "interp", [x], [torch.uint8], IS_FNUZ=fnuz, DMAX=dmax, SAT=sat, NATIVE=False)
    assert_codes(got.numpy(), fp8_oracle(x, fnuz, dmax, sat), x, "fp8 patterns")


# ---------------------------------------------------------------- e2m1
def e2m1_edge_values():
    mids = (E2M1_GRID[1:] + E2M1_GRID[:-1]) / 2
    return np.concatenate([with_neighbours(np.concatenate([E2M1_GRID, mids, [7, 8, 1e30, 0.1]])), SPECIALS])


# RNE, and AITER's MoE-sort rounding (ties away from zero)
E2M1_KERNELS = [(k_e2m1, False), (k_e2m1_half_up, True)]


@pytest.mark.parametrize("kernel,half_up", E2M1_KERNELS, ids=["rne", "half_up"])
@pytest.mark.parametrize("device", DEVICES)
def test_e2m1_edges_and_random(device, kernel, half_up):
    x = np.concatenate([e2m1_edge_values(), random_f32(3000, -4, 4)])
    (got,) = run_rows(kernel, device, [x], [torch.uint8])
    assert_codes(got.numpy(), e2m1_oracle(x, half_up), x, "e2m1")


def test_e2m1_hand_table():
    """The ties of the doc, -0.1 -> 0x8, saturation, NaN -> 0x7 (any sign)."""
    x = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.5, -0.1, -0.0, 1e9, -1e9, np.inf], np.float32)
    x = np.concatenate([x, f32([0x7FC00000, 0xFFC00000])])
    (got,) = run_rows(k_e2m1, "interp", [x], [torch.uint8])
    assert got.tolist() == [0, 2, 2, 4, 4, 6, 6, 7, 8, 8, 7, 15, 7, 7, 7]


@pytest.mark.parametrize("kernel,half_up", E2M1_KERNELS, ids=["rne", "half_up"])
@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=512))
def test_e2m1_random_bit_patterns(kernel, half_up, patterns):
    x = f32(patterns)
    (got,) = run_rows(kernel, "interp", [x], [torch.uint8])
    assert_codes(got.numpy(), e2m1_oracle(x, half_up), x, "e2m1 patterns")


# ---------------------------------------------------------------- int8 / int4
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rne,lo,hi", [(False, -127, 127), (True, -127, 127), (False, -128, 127),
                                       (True, -8, 7), (False, -7, 7)])
def test_int_codes(device, rne, lo, hi):
    ties = np.arange(-130, 131) + 0.5
    x = np.concatenate([with_neighbours(np.concatenate([ties, np.arange(-130, 131), [1e10, 4194304.5]])),
                        SPECIALS, random_f32(2000, -3, 8)])
    (got,) = run_rows(k_int, device, [x], [torch.int8], RNE=rne, LO=lo, HI=hi)
    assert_codes(got.numpy(), int_oracle(x, rne, lo, hi), x, f"int rne={rne} [{lo},{hi}]")


# ---------------------------------------------------------------- E8M0
E8M0_TARGETS = {t.value: t.e8m0 for t in QuantTarget if t.e8m0}
MODES = {m.value: getattr(qn, f"QF_E8M0_{m.name}") for m in E8M0Mode}


def test_mode_constants():
    """The device library numbers the modes 0..4, and the code generator passes the same
    number for each mode (codegen does not import the device library)."""
    assert list(MODES.values()) == [0, 1, 2, 3, 4]
    assert {m.value: code for m, code in E8M0_MODE_CODES.items()} == MODES


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("target", sorted(E8M0_TARGETS))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_e8m0_bytes(device, target, mode):
    max_pos, emax = E8M0_TARGETS[target]
    x = np.concatenate([e8m0_edge_values(max_pos), np.abs(random_f32(1000, -140, 127))])
    (got,) = run_rows(k_e8m0, device, [x], [torch.uint8], MODE=MODES[mode], MAX_POS=max_pos, EMAX=emax)
    assert_codes(got.numpy(), e8m0_oracle(x, MODES[mode], max_pos, emax), x, f"e8m0 {mode} {target}")


def test_e8m0_hand_table():
    """fp4 (6, 2): amax 6 -> 127 in floor/roundup; 0, inf, NaN per mode; 1.5 * 2^k ties."""
    x = np.array([6.0, 0.0, np.inf, np.nan, 1.5 * 8, 1.75 * 4, 5.0, 2.0 ** -130], np.float32)
    want = {"floor": [127, 0, 254, 255, 128, 127, 127, 0], "ceil": [128, 0, 254, 255, 129, 128, 128, 0],
            "even": [127, 0, 254, 255, 128, 128, 127, 0], "roundup": [127, 0, 255, 255, 128, 128, 127, 1],
            "rne_legacy": [128, 0, 255, 255, 129, 128, 127, 0]}
    for mode, w in want.items():
        (got,) = run_rows(k_e8m0, "interp", [x], [torch.uint8], MODE=MODES[mode], MAX_POS=6.0, EMAX=2)
        assert got.tolist() == w, mode


def test_e8m0_oracle_rne_legacy_agrees_with_torch():
    """c10's fp32 -> float8_e8m0fnu cast is the rne_legacy rounding of v = a * 2^-emax."""
    x = e8m0_edge_values(6.0)
    v = torch.from_numpy(x) * 2.0 ** -2
    want = v.to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
    assert_codes(e8m0_oracle(x, qn.QF_E8M0_RNE_LEGACY, 6.0, 2), want, x, "oracle vs torch e8m0")


@pytest.mark.parametrize("device", DEVICES)
def test_e8m0_scale_and_inverse(device):
    b = np.repeat(np.arange(256, dtype=np.uint8), 8)
    x = np.concatenate([random_f32(256 * 7, -140, 127), f32([1, 0x7F7FFFFF]).repeat(128)]).astype(np.float32)
    s, m, d = run_rows(k_e8m0_apply, device, [b, x], [torch.float32] * 3)
    want_s = torch.from_numpy(b).view(torch.float8_e8m0fnu).float().numpy()
    assert not same_f32(s.numpy(), want_s).any()
    assert not same_f32(s.numpy(), np.exp2(b.astype(np.float64) - 127).astype(np.float32) *
                        np.where(b == 255, np.nan, 1).astype(np.float32)).any()
    want = (x.astype(np.float64) / np.exp2(b.astype(np.float64) - 127)).astype(np.float32)
    want[b == 255] = np.nan
    for got in (m, d):  # x * 2^(127-b) and x / 2^(b-127): the same correctly rounded value
        bad = same_f32(got.numpy(), want)
        assert not bad.any(), (x[bad][:4], b[bad][:4])


# ---------------------------------------------------------------- bf16 / f16
@pytest.mark.parametrize("device", DEVICES)
def test_round_bf16_f16(device):
    v = np.arange(0, 2 ** 16, 7, dtype=np.uint32) << 16
    ties = np.concatenate([v | 0x8000, v | 0x7FFF, v | 0x8001, (v | 0x18000)])
    x = np.concatenate([f32(ties), SPECIALS, random_f32(3000, -30, 30), random_f32(500, -26, 17),
                        with_neighbours([65504, 65520, 65536, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26])])
    b, h, bs, hs = run_rows(k_round16, device, [x], [torch.float32, torch.float32, torch.bfloat16, torch.float16])
    xt = torch.from_numpy(x)
    for got, want in ((b, xt.to(torch.bfloat16).float()), (bs, xt.to(torch.bfloat16)),
                      (h, xt.to(torch.float16).float()), (hs, xt.to(torch.float16)),
                      (h, x.astype(np.float16).astype(np.float32))):
        bad = same_f32(got.float().numpy(), np.asarray(want.float() if torch.is_tensor(want) else want))
        assert not bad.any(), (x[bad][:4], got[torch.from_numpy(bad)][:4])


# ---------------------------------------------------------------- div / sqrt / amax
@pytest.mark.parametrize("device", DEVICES)
def test_div_sqrt_correctly_rounded(device):
    n = 20000
    a = np.concatenate([random_f32(n, -126, 126), SPECIALS, f32(RNG.integers(0, 2 ** 32, 2000))])
    b = np.concatenate([random_f32(n, -126, 126), SPECIALS[::-1], f32(RNG.integers(0, 2 ** 32, 2000))])
    q, r = run_rows(k_divsqrt, device, [a, b], [torch.float32, torch.float32])
    with np.errstate(all="ignore"):
        want_q, want_r = a / b, np.sqrt(a)
    assert not same_f32(q.numpy(), want_q).any()
    assert not same_f32(r.numpy(), want_r).any()


def divisor_rows(rows):
    """One divisor per row: random normals, then the edges qf_div_codes guards against."""
    b = random_f32(rows, -40, 40)
    b[:16] = f32([0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0x7F800000,
                  0xFF800000, 0x7FC00000, 0x02800000, 0x7E800000, 0x7E7FFFFF, 0x3F800000,
                  0x3F7FFFFF, 0x3F800001])
    return b


def check_div_codes(a, b, got):
    """Mismatches of qf_div_codes: bits must equal a / b except (1) below 2^-36, where only
    the sign and staying below 2^-30 matter (every code format gives a signed zero), and
    (2) +-inf where a / b is above 2^127 (every format saturates or overflows it)."""
    with np.errstate(all="ignore"):
        want = a / b
    bad = same_f32(got, want)
    bad &= ~((np.abs(want) < 2.0 ** -36) & (np.abs(got) < 2.0 ** -30)
             & (np.signbit(got) == np.signbit(want)))
    bad &= ~((np.abs(want) > 2.0 ** 127) & np.isinf(got) & (np.signbit(got) == np.signbit(want)))
    return bad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("per_row", [True, False])
def test_div_codes_correctly_rounded(device, per_row):
    """qf_div_codes (reciprocal, multiply, one fma correction) gives a / b bit for bit
    wherever a code format can tell (see check_div_codes), with per-row divisors that
    include every guarded edge (zero, subnormal, tiny, huge, inf, NaN)."""
    rows = 48
    b_rows = divisor_rows(rows)
    a = np.concatenate([random_f32(rows * COLS - 4000, -60, 60), SPECIALS,
                        f32(RNG.integers(0, 2 ** 32, 4000 - len(SPECIALS)))])
    dev = "cpu" if device == "interp" else device
    at = torch.from_numpy(a).to(dev)
    bt = torch.from_numpy(b_rows).to(dev)
    q = torch.empty_like(at)
    launch(k_divcodes, (rows,), device, at, bt, q, N=COLS, PER_ROW=per_row)
    got = q.cpu().numpy()
    with np.errstate(all="ignore"):
        want = a / np.repeat(b_rows, COLS)
    bad = check_div_codes(a, np.repeat(b_rows, COLS), got)
    i = np.nonzero(bad)[0][:4]
    assert not bad.any(), [(a[k], np.repeat(b_rows, COLS)[k], got[k], want[k]) for k in i]
    normal = (np.abs(want) >= 2.0 ** -36) & (np.abs(want) <= 2.0 ** 127)
    assert normal.sum() > 0.5 * len(a)          # the test exercises the fast path


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=COLS), st.integers(0, 2 ** 32 - 1))
def test_div_codes_random_bit_patterns(patterns, b_bits):
    a = np.zeros(COLS, dtype=np.float32)
    a[:len(patterns)] = f32(patterns)
    b = f32([b_bits])
    q = torch.empty(COLS, dtype=torch.float32)
    launch(k_divcodes, (1,), "interp", torch.from_numpy(a), torch.from_numpy(b), q, N=COLS,
           PER_ROW=True)
    bad = check_div_codes(a, b[0], q.numpy())
    assert not bad.any(), (a[bad][:3], b, q.numpy()[bad][:3])


def bounded_rows(rows):
    """Rows whose scale max|a| / D spans the fast range [2^-64, 2^126] and its edges: each
    row is random mantissas times a per-row power of two, some rows all zero or padded
    with zeros and negative zeros, one row at the fp32 max."""
    exps = RNG.integers(-50, 120, rows)
    exps[:8] = [-150, -80, -58, -57, 0, 118, 120, 127]
    a = (RNG.standard_normal((rows, COLS)) * np.exp2(exps.astype(np.float64))[:, None]).astype(np.float32)
    a[8] = 0.0
    a[9, ::2] = -0.0
    a[10] = f32([0x7F7FFFFF, 0xFF7FFFFF] * (COLS // 2))
    return a


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dmax", [448.0, 127.0, 6.0])
def test_div_bounded_is_the_quotient(device, dmax):
    """qf_div_bounded (Markstein without lane fixes, zero signs kept) equals numpy's a / b
    bit for bit, zeros' signs included, on every row where qf_scale_fast_ok admits the
    scale b = RN(max|a| / D); rows outside the range take the general path."""
    rows = 40
    a = bounded_rows(rows)
    dev = "cpu" if device == "interp" else device
    at = torch.from_numpy(a.reshape(-1)).to(dev)
    b, q = torch.empty(rows, device=dev), torch.empty_like(at)
    ok = torch.empty(rows, dtype=torch.int32, device=dev)
    launch(k_div_bounded, (rows,), device, at, b, q, ok, N=COLS, D=dmax)
    b, ok, got = b.cpu().numpy(), ok.cpu().numpy().astype(bool), q.cpu().numpy().reshape(rows, COLS)
    with np.errstate(all="ignore"):
        want_b = (np.abs(a).max(axis=1) / np.float32(dmax)).astype(np.float32)
    want_b = np.where(want_b == 0, np.float32(1), want_b)
    assert not same_f32(b, want_b).any()
    in_range = (np.abs(want_b) >= 2.0 ** -64) & (np.abs(want_b) <= 2.0 ** 126)
    assert in_range.sum() >= rows - 6 and (~in_range).sum() >= 2
    # an interpreter whose fma rounds twice (triton < 3.8) never takes the fast path
    assert (ok == (in_range & (device != "interp" or interpreter_fma_exact()))).all()
    want = a / want_b[:, None]
    bad = same_f32(got[ok], want[ok])
    assert not bad.any(), (a[ok][bad][:3], got[ok][bad][:3], want[ok][bad][:3])
    assert np.abs(want[in_range]).max() <= dmax * (1 + 2.0 ** -23)
    slow = np.repeat(~ok, COLS)
    assert not check_div_codes(a.reshape(-1)[slow], np.repeat(want_b, COLS)[slow],
                               got.reshape(-1)[slow]).any()


def interpreter_fma_exact() -> bool:
    """Whether this triton's interpreter has a one-rounding fma (numerics._fma_is_exact)."""
    from qfuse.backends.triton.triton_adapter import interpreter_fma_is_exact
    return interpreter_fma_is_exact()


@pytest.mark.parametrize("device", DEVICES)
def test_amax_propagates_nan(device):
    rows, n = 6, 256
    x = random_f32(rows * n).reshape(rows, n)
    x[1, 17] = np.nan
    x[2, 255] = -np.inf
    x[3, :] = 0.0
    x[4, 0] = f32([0xFFC00001])[0]
    x[5, 3] = -1e30
    dev = "cpu" if device == "interp" else device
    xt, y = torch.from_numpy(x).to(dev), torch.zeros(rows, device=dev)
    launch(k_amax, (rows,), device, xt, y, N=n)
    want = np.abs(x).max(axis=1)  # numpy max propagates NaN
    assert not same_f32(y.cpu().numpy(), want).any()
    assert np.isnan(y[1].item()) and np.isnan(y[4].item()) and y[2].item() == np.inf


# ---------------------------------------------------------------- nibble packing
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("signed", [False, True])
def test_pack_nibbles(device, signed):
    r, n = 4, 64
    codes = RNG.integers(-8, 8, (r, n)) if signed else RNG.integers(0, 16, (r, n))
    codes = codes.astype(np.int8 if signed else np.uint8)
    dev = "cpu" if device == "interp" else device
    y = torch.zeros(r, n // 2, dtype=torch.uint8, device=dev)
    launch(k_pack, (1,), device, torch.from_numpy(codes).to(dev), y, R=r, N=n)
    nib = codes.astype(np.int64) & 0xF
    assert (y.cpu().numpy() == (nib[:, 0::2] | (nib[:, 1::2] << 4))).all()


# ---------------------------------------------------------------- the reference backend, a second oracle
@pytest.mark.parametrize("device", DEVICES)
def test_helpers_agree_with_reference_backend(device):
    from qfuse.backends.reference import numerics as ref
    fp8_x = np.concatenate([fp8_edge_values(False), fp8_edge_values(True), random_f32(2000, -14, 10)])
    for fnuz, dmax, sat in FP8_CASES:
        fmt = "fp8_e4m3fnuz" if fnuz else "fp8_e4m3fn"
        (got,) = run_rows(k_fp8, device, [fp8_x], [torch.uint8], IS_FNUZ=fnuz, DMAX=dmax, SAT=sat, NATIVE=True)
        want = ref.round_fp8(torch.from_numpy(fp8_x), fmt, dmax, sat).view(torch.uint8).numpy()
        assert_codes(got.numpy(), want, fp8_x, f"fp8 vs reference {fmt} {dmax} sat={sat}")
    x = np.concatenate([e2m1_edge_values(), random_f32(2000, -4, 8), SPECIALS])
    (got,) = run_rows(k_e2m1, device, [x], [torch.uint8])
    assert_codes(got.numpy(), ref.encode_e2m1(torch.from_numpy(x)).numpy(), x, "e2m1 vs reference")
    for rne, lo, hi in [(False, -127, 127), (True, -8, 7)]:
        (got,) = run_rows(k_int, device, [x], [torch.int8], RNE=rne, LO=lo, HI=hi)
        want = ref.round_int(torch.from_numpy(x), "rne" if rne else "trunc", lo, hi).numpy()
        assert_codes(got.numpy(), want, x, f"int vs reference rne={rne}")
    for target, (max_pos, emax) in E8M0_TARGETS.items():
        a = np.concatenate([e8m0_edge_values(max_pos), np.abs(random_f32(500, -140, 127))])
        for mode, m in MODES.items():
            (got,) = run_rows(k_e8m0, device, [a], [torch.uint8], MODE=m, MAX_POS=max_pos, EMAX=emax)
            want = ref.e8m0_byte(torch.from_numpy(a), mode, target).numpy()
            assert_codes(got.numpy(), want, a, f"e8m0 vs reference {mode} {target}")
    b = np.arange(256, dtype=np.uint8)
    s, _, _ = run_rows(k_e8m0_apply, device, [b, np.ones(256, np.float32)], [torch.float32] * 3)
    assert not same_f32(s.numpy(), ref.e8m0_to_f32(torch.from_numpy(b)).numpy()).any()
    bf, h, _, _ = run_rows(k_round16, device, [x], [torch.float32, torch.float32, torch.bfloat16, torch.float16])
    assert not same_f32(bf.numpy(), ref.round_to_float(torch.from_numpy(x), "bf16").float().numpy()).any()
    assert not same_f32(h.numpy(), ref.round_to_float(torch.from_numpy(x), "f16").float().numpy()).any()
