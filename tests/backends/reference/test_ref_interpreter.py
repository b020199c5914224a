"""The interpreter: a hand-built TypedPipeline, input checking, and every example pipeline."""
from __future__ import annotations

import glob
import os

import pytest
import torch

from qfuse.backends.reference import HANDLERS, run_pipeline
from qfuse.backends.reference.stages import run_norm, run_round, run_scale
from qfuse.dialect.builder import build_module
from qfuse.dialect.reader import read_pipelines
from qfuse.dialect.stages import STAGES, infer_results, resolve_options
from qfuse.dialect.types import Dim, ScalarType, TensorType, dtype
from qfuse.dialect.typed import ConstInfo, ParamInfo, StageCall, TypedPipeline, Value
from qfuse.dsl import load_file
from qfuse.errors import InputError, SourceLoc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LOC = SourceLoc("hand.qp", 1, 1)


def test_handlers_cover_the_catalog():
    assert set(HANDLERS) == set(STAGES)


def ttype(dt, *dims):
    return TensorType(dtype(dt), tuple(Dim(d) for d in dims))


def call(calls, stage, names, **kw):
    st = STAGES[stage]
    operands = {o.name: kw.pop(o.name, None) for o in st.operands}
    args = {n: v.type for n, v in operands.items() if v is not None}
    options = resolve_options(st, args, kw)
    inferred = infer_results(st, args, options)
    loc = SourceLoc("hand.qp", len(calls) + 2, 5)
    results = [Value(n, t, loc) for n, (_, t) in zip(names, inferred)]
    calls.append(StageCall(stage, operands, options, results, loc, [n for n, _ in inferred]))
    return results


def handbuilt():
    """def p(x: bf16[M, N], w: bf16[N], r: bf16[M, N], eps: f32 = 1e-6):
           y, h = norm(x, w, eps, residual=r); s = scale(y, i8, per_1x32)
           q = round(y, s, i8, mode=rne); return q, s, h  (plus a constant operand: mul by 2)"""
    x = Value("x", ttype("bf16", "M", "N"), LOC)
    w = Value("w", ttype("bf16", "N"), LOC)
    r = Value("r", ttype("bf16", "M", "N"), LOC)
    eps = Value("eps", ScalarType(dtype("f32")), LOC)
    two = Value("c0", ScalarType(dtype("f32")), LOC)
    calls = []
    x2, = call(calls, "mul", ["x2"], a=x, b=two)
    y, h = call(calls, "norm", ["y", "h"], x=x2, w=w, eps=eps, residual=r)
    s, = call(calls, "scale", ["s"], x=y, dtype="i8", granularity="per_1x32")
    q, = call(calls, "round", ["q"], x=y, s=s, dtype="i8", granularity="per_1x32", mode="rne")
    return TypedPipeline("p", [ParamInfo(x), ParamInfo(w), ParamInfo(r), ParamInfo(eps, 1e-6)],
                         [ConstInfo(two, 2.0)], calls, [q, s, h], LOC, ["q", "s", "res"])


def test_handbuilt_pipeline_matches_direct_stage_calls():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 80, generator=g).to(torch.bfloat16)
    w = torch.randn(80, generator=g).to(torch.bfloat16)
    r = torch.randn(3, 80, generator=g).to(torch.bfloat16)
    out = run_pipeline(handbuilt(), {"x": x, "w": w, "r": r})
    assert list(out) == ["q", "s", "res"]
    x2 = x.to(torch.float32) * 2
    y, h = run_norm(x2, w, 1e-6, None, r)
    (s,) = run_scale(y, dtype="i8", granularity="per_1x32")
    (q,) = run_round(y, s, dtype="i8", granularity="per_1x32", mode="rne")
    assert torch.equal(out["q"], q) and torch.equal(out["s"], s)
    assert out["q"].dtype == torch.int8 and out["s"].shape == (3, 3)
    assert out["res"].dtype == torch.float32 and torch.equal(out["res"], h)   # x2 is f32
    out2 = run_pipeline(handbuilt(), {"x": x, "w": w, "r": r, "eps": torch.tensor(0.5)})
    assert not torch.equal(out2["s"], out["s"])          # eps given as a 0-d tensor is used


def test_registered_backend_runs_pipelines():
    from qfuse.backends.registry import get_backend
    x = torch.ones(2, 32, dtype=torch.bfloat16)
    out = get_backend("reference").run(handbuilt(), {"x": x, "w": x[0], "r": x})
    assert list(out) == ["q", "s", "res"]


def test_input_errors_name_the_parameter():
    tp = handbuilt()
    x = torch.zeros(4, 128, dtype=torch.bfloat16)
    ok = {"x": x, "w": torch.zeros(128, dtype=torch.bfloat16), "r": x}
    with pytest.raises(InputError) as e:
        run_pipeline(tp, {**ok, "x": torch.zeros(4)})
    assert str(e.value) == "x: expected bf16[M, N] (bfloat16), got float32 tensor of shape (4,)"
    with pytest.raises(InputError, match=r"w: expected bf16\[N\], got bfloat16 tensor of shape "
                                         r"\(64,\): N=64 here but N=128 from x"):
        run_pipeline(tp, {**ok, "w": torch.zeros(64, dtype=torch.bfloat16)})
    with pytest.raises(InputError, match="r: expected bf16"):
        run_pipeline(tp, {**ok, "r": torch.zeros(4, 128, dtype=torch.float16)})
    with pytest.raises(InputError, match="r: missing input"):
        run_pipeline(tp, {"x": x, "w": ok["w"]})
    with pytest.raises(InputError, match="has no parameter 'z'"):
        run_pipeline(tp, {**ok, "z": x})
    with pytest.raises(InputError, match="eps: expected a f32 scalar"):
        run_pipeline(tp, {**ok, "eps": "small"})


def test_constant_dims_and_compound_dims():
    s = Value("s", ttype("f32", 1), LOC)
    xv = Value("x", TensorType(dtype("f32"), (Dim("M"), Dim(("mul", Dim("N"), Dim(2))))), LOC)
    n = Value("n", ttype("f32", "N"), LOC)
    calls = []
    o, = call(calls, "add", ["o"], a=xv, b=xv)          # n and s are only bound and checked
    tp = TypedPipeline("c", [ParamInfo(xv), ParamInfo(n), ParamInfo(s)], [], calls, [o], LOC, ["o"])
    good = {"x": torch.ones(2, 6), "n": torch.ones(3), "s": torch.ones(1)}
    assert run_pipeline(tp, good)["o"].shape == (2, 6)
    with pytest.raises(InputError, match="dim 1 must be N\\*2 = 6"):
        run_pipeline(tp, {**good, "x": torch.ones(2, 5)})
    with pytest.raises(InputError, match="dim 0 must be 1"):
        run_pipeline(tp, {**good, "s": torch.ones(2)})


def test_stage_errors_are_located():
    x = Value("x", ttype("f32", "T", "H", "D"), LOC)
    cos = Value("cos", ttype("f32", "P", "R"), LOC)
    pos = Value("pos", ttype("i64", "T"), LOC)
    calls = []
    o, = call(calls, "rope", ["o"], x=x, cos=cos, sin=cos, pos=pos)
    tp = TypedPipeline("r", [ParamInfo(x), ParamInfo(cos), ParamInfo(pos)], [], calls, [o], LOC)
    with pytest.raises(InputError) as e:
        run_pipeline(tp, {"x": torch.ones(2, 1, 2), "cos": torch.ones(3, 2),
                          "pos": torch.tensor([0, 1])})     # rotary dim 4 > head dim 2
    assert e.value.loc == calls[0].loc and "rope" in e.value.message


# ----------------------------------------------------------------- examples/*.qp
def example_inputs(tp, g):
    names = {p.value.name: p.value.type for p in tp.params}
    sizes = dict(M=5, N=96, S=3, N2=64, A=4, B=6, R=7, E=4, K=2, T=6, H=2, D=32, P=8, BS=16)
    caches = [t for n, t in names.items() if "cache" in n and isinstance(t, TensorType)]
    if caches:
        sizes["B"] = 3
        x = 16 // max(1, caches[0].dtype.bits // 8)
        sizes.update(X=x, DX=sizes["D"] // x, BSX=sizes["BS"] // x, S=3 * sizes["BS"])
    if "cos" in names:
        sizes["R"] = sizes["D"] // 2
    inputs = {}
    for n, t in names.items():
        if isinstance(t, ScalarType):
            continue
        shape = tuple(d.eval(sizes) for d in t.shape)
        dt = t.dtype.torch_dtype()
        if n == "slots":
            perm = torch.randperm(sizes["B"] * sizes["BS"], generator=g)[: shape[0]]
            perm[1] = -1
            inputs[n] = perm.to(dt)
        elif n == "pos":
            inputs[n] = torch.randint(0, sizes["P"], shape, generator=g, dtype=dt)
        elif n in ("sorted_ids", "topk_ids"):
            hi = sizes["M"] if n == "sorted_ids" else sizes["E"]
            v = torch.randint(-1, hi + 1, shape, generator=g, dtype=torch.int64)
            if n == "sorted_ids":
                v = v | (torch.randint(0, 4, shape, generator=g) << 24)
            inputs[n] = v.to(dt)
        elif t.dtype.name.startswith("fp8"):
            inputs[n] = torch.randn(shape, generator=g).to(dt)
        elif t.dtype.kind == "float" and ("scale" in n or n == "s"):
            inputs[n] = torch.rand(shape, generator=g) * 0.1 + 0.01
        elif t.dtype.kind == "float":
            inputs[n] = torch.randn(shape, generator=g).to(dt)
        else:
            raise AssertionError(f"no generator for {n}: {t}")
    return inputs, sizes


def example_pipelines():
    out = []
    for f in sorted(glob.glob(os.path.join(ROOT, "examples", "*.qp"))):
        for name, tp in load_file(f).items():
            out.append(pytest.param(tp, id=f"{os.path.basename(f)}:{name}"))
    return out


@pytest.mark.parametrize("tp", example_pipelines())
def test_example_pipeline_runs(tp):
    g = torch.Generator().manual_seed(7)
    inputs, sizes = example_inputs(tp, g)
    before = {k: v.clone() for k, v in inputs.items()}
    out = run_pipeline(tp, inputs)
    assert list(out) == list(tp.return_names or [v.name for v in tp.returns])
    for (name, val), v in zip(out.items(), tp.returns):
        t = v.type
        assert val.dtype == t.dtype.torch_dtype(), name
        assert tuple(val.shape) == tuple(d.eval(sizes) for d in t.shape), name
        if val.dtype.is_floating_point and val.element_size() > 1:
            assert torch.isfinite(val.to(torch.float32)).all(), name
        elif val.dtype in (torch.float8_e4m3fn, torch.float8_e4m3fnuz):
            assert not torch.isnan(val.to(torch.float32)).any(), name
    for k, v in before.items():                      # inputs are never modified
        assert same(inputs[k], v), k
    (read,) = read_pipelines(build_module([tp]))     # the qf module read back runs identically
    again = run_pipeline(read, inputs)
    assert list(again) == list(out)
    assert all(same(a, b) for a, b in zip(again.values(), out.values()))


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (fp8 compared as bytes)."""
    if a.element_size() == 1:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return a.dtype == b.dtype and torch.equal(a, b)
