"""Shared helpers for the Triton kernel tests (and the tests of the helpers themselves).

* :func:`split` gives the kernels of a pipeline's fused module (what production renders);
  :func:`run_both` runs them through the Triton backend (CPU interpreter), and the
  pipeline through the reference interpreter; :func:`assert_bitwise` demands identical
  bits;
* :func:`assert_norm_explained` is the check for norm pipelines: every code (and scale)
  that differs from the reference must be explained by the fp32 sum order of the norm,
  i.e. the reference's pre-rounding value lies within that rounding of a boundary. It
  recomputes the pre-rounding value from the reference, widens it by the sum-order bound,
  and requires the Triton code to lie between the codes of the two ends.
"""
from __future__ import annotations

import pytest
import torch

from qfuse.backends.reference import run_pipeline as ref_run
from qfuse.backends.reference.numerics import decode_e2m1, e8m0_byte, quantize
from qfuse.backends.reference.stages.quant import expand_scale, group_amax
from qfuse.backends.triton import TritonConfig, run_pipeline, sub_pipeline
from qfuse.dsl import load_source
from qfuse.runtime.compiler import compile_pipeline

F8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz)
U = 2.0 ** -24


def pipes(src: str, file: str = "kernels_test.qp") -> dict:
    return load_source(src, file)


def split(tp) -> list:
    """The kernel functions of the fused module as (kernel program, space) pairs, in
    launch order: what ``compile_pipeline`` hands a backend (the reference backend here,
    which renders nothing)."""
    return [(step.program, step.space)
            for step in compile_pipeline(tp, "reference", "cpu:ref").steps]


def run_both(tp, inputs: dict, kernels=None, block_m=None) -> tuple:
    """The Triton backend's outputs (the fused module's kernels unless ``kernels`` are
    given, in the CPU interpreter) and the reference interpreter's."""
    got = run_pipeline(tp, inputs, kernels=kernels or split(tp),
                       config=TritonConfig(block_m=block_m), interpret=True)
    return got, ref_run(tp, inputs)


def bits(t: torch.Tensor) -> torch.Tensor:
    """Storage bits of any tensor, as an integer tensor."""
    if t.element_size() == 1:
        return t.view(torch.uint8)
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _nan(t):
    return torch.isnan(t) if t.dtype.is_floating_point and t.element_size() > 1 else \
        torch.zeros(t.shape, dtype=torch.bool)


def assert_bitwise(got: dict, ref: dict, skip=()) -> None:
    """Every output identical bit for bit (NaN matches NaN whatever its payload)."""
    assert list(got) == list(ref)
    for k in ref:
        if k in skip:
            continue
        a, b = got[k], ref[k]
        assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype, a.shape, b.shape)
        bad = (bits(a) != bits(b)) & ~(_nan(a) & _nan(b))
        if bad.any():
            idx = bad.nonzero()[:5].tolist()
            raise AssertionError(f"{k}: {int(bad.sum())} of {bad.numel()} differ, first at {idx}: "
                                 f"got {[bits(a)[tuple(i)].item() for i in idx]} want "
                                 f"{[bits(b)[tuple(i)].item() for i in idx]}")


# ------------------------------------------------------------ norm: sum-order explained
def decode(codes: torch.Tensor, target: str) -> torch.Tensor:
    """A float64 ordering key for codes (the decoded value)."""
    if target.startswith("fp8"):
        dt = F8[target == "fp8_e4m3fnuz"]
        return codes.view(torch.uint8).view(dt).to(torch.float64)
    if target == "fp4_e2m1":
        return decode_e2m1(codes).to(torch.float64)
    return codes.to(torch.float64)


def explained(got, ref, v, quant, key, tol) -> torch.Tensor:
    """Mask of elements whose Triton code ``got`` is explained: equal to ``ref``, or between
    ``quant(v - tol)`` and ``quant(v + tol)`` (rounding is monotonic, so every code between
    the two ends is reachable from a value within ``tol`` of ``v``)."""
    same = bits(got) == bits(ref)
    lo, hi = quant(v - tol), quant(v + tol)
    kg, kl, kh = key(got), key(lo), key(hi)
    ok = (kg >= torch.minimum(kl, kh)) & (kg <= torch.maximum(kl, kh))
    zero = kg == 0          # the sign of a zero code must come from one of the ends
    ok &= ~zero | (bits(got) == bits(lo)) | (bits(got) == bits(hi))
    return same | ok


def sum_order_tol(v: torch.Tensor, n: int) -> torch.Tensor:
    """Per element: n ulps relative to |v| plus n ulps of the row's largest |v| (the norm's
    sums have relative error <= (n-1) u; LayerNorm's mean shifts every d_j absolutely)."""
    a = torch.nan_to_num(v.abs(), nan=0.0, posinf=0.0)
    row = a.amax(dim=-1, keepdim=True) if a.numel() else a
    return n * U * (a + row)


def pre_round(tp, inputs: dict, round_call) -> tuple:
    """The reference's operands of ``round_call``: (x, s) from a sub-pipeline."""
    i = tp.calls.index(round_call)
    sub = sub_pipeline(tp, tp.calls[:i], [p.value for p in tp.params],
                       [round_call.operands["x"], round_call.operands["s"]])
    r = ref_run(sub, inputs)
    return tuple(r.values())


def assert_norm_explained(tp, inputs: dict, got: dict, ref: dict, n: int) -> None:
    """Norm pipelines: codes (and their scales) may differ from the reference only where
    explained by the fp32 sum order (see the module docstring); everything else exact."""
    rnd = next(c for c in tp.calls if c.stage == "round")
    o = rnd.options
    gran, target = o["granularity"], o["dtype"]
    x, s_ref = pre_round(tp, inputs, rnd)
    s_val = rnd.operands["s"]
    names = list(tp.return_names)
    s_name = names[tp.returns.index(s_val)] if s_val in tp.returns else None
    s_got = got[s_name] if s_name else s_ref
    x32 = x.float()
    if s_name:
        if gran == "mx":
            amax = group_amax(x32, "mx")
            tol = sum_order_tol(amax, n)
            scall = next(c for c in tp.calls if c.results[0] is s_val)

            def e8(a):
                return e8m0_byte(a, scall.options["e8m0"], target)
            ok = explained(s_got, s_ref, amax, e8, lambda b: b.to(torch.float64), tol)
        else:
            ok = (bits(s_got) == bits(s_ref)) | ((s_got - s_ref).abs() <= sum_order_tol(s_ref, n))
            ok |= torch.isnan(s_got) & torch.isnan(s_ref)
        assert ok.all(), f"scale {s_name}: {int((~ok).sum())} differences not explained"
    # the pre-rounding value with the scale Triton chose, as the reference computes it
    if gran == "mx":
        from qfuse.backends.reference.numerics import e8m0_to_f32
        v = x32 / expand_scale(e8m0_to_f32(s_got), "mx", tuple(x32.shape))
    else:
        sb = expand_scale(s_got.float(), gran, tuple(x32.shape))
        v = x32 / sb if o["recip"] == "div" else x32 * (torch.ones_like(sb) / sb)
        v = torch.where(sb == 0, torch.zeros_like(v), v)

    def quant(w):
        return quantize(w, target, dtype_max=o["dtype_max"], mode=o["mode"], sat=o["sat"])
    codes_ref = quant(v)
    q_val = rnd.results[0]
    packed = next((c for c in tp.calls if c.stage == "pack" and c.operands["x"] is q_val), None)
    out_val = packed.results[0] if packed else q_val
    q_got = got[names[tp.returns.index(out_val)]]
    if packed:
        q_got = unpack(q_got, target)
    ok = explained(q_got, codes_ref, v, quant, lambda c: decode(c, target), sum_order_tol(v, n))
    assert ok.all(), (f"codes: {int((~ok).sum())} differences not explained by the sum order, "
                      f"first at {(~ok).nonzero()[:3].tolist()}")
    others = {k: got[k] for k in names if k not in (s_name, names[tp.returns.index(out_val)])}
    assert_bitwise(others, {k: ref[k] for k in others})


def unpack(p: torch.Tensor, target: str) -> torch.Tensor:
    lo, hi = p & 0xF, p >> 4
    c = torch.stack([lo, hi], dim=-1).reshape(p.shape[:-1] + (2 * p.shape[-1],))
    if target == "int4":
        return ((c.to(torch.int16) ^ 8) - 8).to(torch.int8)
    return c


# ------------------------------------------------------------ inputs
def randn(*shape, dtype=torch.bfloat16, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).to(dtype)


def edge_rows(m: int, n: int, dtype=torch.bfloat16, seed=0, specials=True):
    """randn rows, then: row 0 zeros; row 1 exact ties for fp8 / int8 / e2m1 at scale 1
    (448 and 127 and 6 set the amax); row 2 large values; row 3 NaN; row 4 +-inf."""
    x = randn(m, n, dtype=torch.float32, seed=seed)
    ties = torch.tensor([448.0, 1.0625, -1.0625, 2.5, 3.5, 0.75, -0.25, 1.5, 127.0, 6.0, 5.0,
                         0.5, -2.5, 1.1875, 0.0, -0.0])
    if m > 0:
        x[0] = 0
    if m > 1:
        x[1] = ties.repeat(n // len(ties) + 1)[:n]
    if m > 2:
        x[2] = x[2] * 1e30
    if specials and m > 3 and n > 2:
        x[3, n // 2] = float("nan")
    if specials and m > 4 and n > 2:
        x[4, 1], x[4, n - 1] = float("inf"), float("-inf")
    return x.to(dtype)


# ------------------------------------------------------------ tests of the check itself
_CHECK = pipes("""
def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s
""", "check.qp")


def test_norm_check_accepts_identical_and_rejects_a_real_mismatch():
    tp = _CHECK["rms_fp8"]
    x, w = randn(4, 96, seed=3), randn(96, seed=4)
    inputs = {"x": x, "w": w}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, 96)
    # one code moved by one fp8 step where the value is far from a boundary: must fail
    rx, _ = pre_round(tp, inputs, tp.calls[2])
    v = (rx / ref["s"]).abs()
    frac = v / 2.0 ** torch.floor(torch.log2(v)) * 8 % 1      # position between fp8 steps
    i, j = ((frac - 0.25).abs() < 0.1).nonzero()[0].tolist()
    bad = dict(got)
    q = got["round_0"].view(torch.uint8).clone()
    q[i, j] += 1
    bad["round_0"] = q.view(torch.float8_e4m3fn)
    with pytest.raises(AssertionError, match="not explained"):
        assert_norm_explained(tp, inputs, bad, ref, 96)
    # a scale off by far more than the sum order: must fail too
    bad = dict(got)
    bad["s"] = got["s"] * 1.001
    with pytest.raises(AssertionError, match="scale"):
        assert_norm_explained(tp, inputs, bad, ref, 96)


def test_explained_accepts_a_boundary_value():
    # v just below the fp8 midpoint 1.0625: the reference gives 1.0, a value one ulp up
    # gives 1.125; with a tolerance of a few ulps both codes are explained
    v = torch.tensor([1.0625 - 2 ** -20, 1.3])
    q = lambda w: quantize(w, "fp8_e4m3fn", dtype_max=448.0)    # noqa: E731
    ref = q(v)
    got = q(torch.tensor([1.0625, 1.3]))
    tol = torch.full_like(v, 4 * 2 ** -20)
    assert explained(got, ref, v, q, lambda c: decode(c, "fp8_e4m3fn"), tol).all()
    got2 = q(torch.tensor([1.0625, 1.4]))
    assert not explained(got2, ref, v, q, lambda c: decode(c, "fp8_e4m3fn"), tol)[1]
