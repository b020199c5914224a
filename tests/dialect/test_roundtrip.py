"""TypedPipeline -> MLIR -> text -> MLIR -> TypedPipeline, for hand-built and example pipelines."""
from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest
import torch

import handbuilt as hb
from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.dialect import build_module, parse_module, print_module, read_pipelines
from qfuse.dialect.encoding import dims_attr, dims_from_attr, source_loc
from qfuse.dialect.mlir import PassManager
from qfuse.dialect.ops import make_context
from qfuse.dialect.types import Dim, cdiv_dim, div_dim, mul_dim
from qfuse.dsl import load_file
from qfuse.dsl.typed import StageCall
from qfuse.errors import QfuseError

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[2] / "examples").glob("*.qp"))


def assert_equivalent(got, want) -> None:
    """Same program: params, constants, stage calls (wiring, options, result types), returns."""
    assert got.name == want.name
    keys_got, keys_want = {}, {}

    def bind(pairs):
        for g, w in pairs:
            assert str(g.type) == str(w.type), (g, w)
            keys_got[g], keys_want[w] = len(keys_got), len(keys_want)

    assert [p.value.name for p in got.params] == [p.value.name for p in want.params]
    assert [p.default for p in got.params] == [p.default for p in want.params]
    bind((g.value, w.value) for g, w in zip(got.params, want.params))
    assert [c.literal for c in got.consts] == [c.literal for c in want.consts]
    bind((g.value, w.value) for g, w in zip(got.consts, want.consts))
    assert len(got.calls) == len(want.calls)
    for g, w in zip(got.calls, want.calls):
        assert (g.stage, g.options, g.loc) == (w.stage, w.options, w.loc)
        assert list(g.operands) == list(w.operands)
        assert [keys_got.get(v) for v in g.operands.values()] == \
               [keys_want.get(v) for v in w.operands.values()]
        assert g.result_names == w.result_names
        assert [v.name for v in g.results] == [v.name for v in w.results]
        bind(zip(g.results, w.results))
    assert [keys_got[v] for v in got.returns] == [keys_want[v] for v in want.returns]
    assert got.return_names == (want.return_names or [v.name for v in want.returns])
    assert got.loc == want.loc


def roundtrip(pipelines) -> None:
    module = build_module(pipelines)
    text = print_module(module, debug_info=True)
    again = parse_module(text, ctx=make_context())          # a fresh context
    assert print_module(again, debug_info=True) == text
    assert print_module(again) == print_module(module)
    assert_no_unknown_locations(again, text)
    parse_module(re.sub(r"qf\.dims = \[[^\]]*\], ", "", text))    # unnamed dims: still valid
    read = read_pipelines(again)
    assert len(read) == len(pipelines)
    for got, want in zip(read, pipelines):
        assert_equivalent(got, want)
    for got, want in zip(read_pipelines(module), pipelines):
        assert_equivalent(got, want)
    with module.context:                                        # what the cleanup pass runs
        PassManager.parse("builtin.module(canonicalize,cse)").run(module.operation)
    for got, want in zip(read_pipelines(module), pipelines):
        assert_equivalent(got, want)


def assert_no_unknown_locations(module, text: str) -> None:
    """Every op and block argument has a file location; only the module is unknown."""
    def visit(op):
        for region in op.regions:
            for block in region.blocks:
                for arg in block.arguments:
                    assert source_loc(arg.location) is not None, arg
                for inner in block.operations:
                    assert source_loc(inner.location) is not None, inner
                    visit(inner.operation)
    visit(module.operation)
    unknown = re.findall(r"^(#loc\d*) = loc\(unknown\)$", text, re.M)
    assert len(unknown) == 1
    assert text.count(f"loc({unknown[0]})") == 1 and text.count("loc(unknown)") == 1
    assert re.search(rf"^}} loc\({unknown[0]}\)$", text, re.M)        # the module itself


@pytest.mark.parametrize("make", hb.ALL, ids=lambda f: f.__name__)
def test_handbuilt_roundtrip(make):
    roundtrip([make()])


def test_all_handbuilt_in_one_module():
    roundtrip([make() for make in hb.ALL])


def test_constant_literal_survives_f32():
    tp = hb.add_rmsnorm_static()
    [read] = read_pipelines(build_module([tp]))
    assert read.consts[0].literal == 1e-6                     # not 9.99999997e-07


def test_values_keep_their_dsl_names_and_symbols():
    [read] = read_pipelines(build_module([hb.kv_rope_cache()]))
    calls = {c.stage: c for c in read.calls}
    assert [v.name for v in calls["cache_write"].results] == ["kc", "ks"]
    assert str(calls["scale"].results[0].type) == "f32[R2, cdiv(H*D, 128)]"
    assert read.symbols() == ["T", "H", "D", "P", "R", "B", "DX", "BS", "S", "R2"]


def test_fused_kernel_call_reads_as_the_inlined_program():
    """An outlined ``qf.kernel`` function called with ``func.call`` reads back inlined."""
    tp = hb.rmsnorm_per_token_fp8()
    lines = print_module(build_module([tp]), debug_info=True).splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  func.func @"))
    ret = next(i for i, line in enumerate(lines) if line.startswith("    return "))
    types = "(tensor<?x?xbf16>, tensor<?xbf16>, f32) -> (tensor<?x?xf8E4M3FN>, tensor<?x1xf32>)"
    kernel = ("  func.func private @k0(%arg0: tensor<?x?xbf16>, %arg1: tensor<?xbf16>, "
              "%arg2: f32) -> (tensor<?x?xf8E4M3FN>, tensor<?x1xf32>) attributes {qf.kernel} {\n"
              + "".join(lines[start + 1:ret])
              + "    return %2, %1 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>\n  }\n")
    caller = (f"    %0:2 = call @k0(%arg0, %arg1, %arg2) : {types}\n"
              "    return %0#0, %0#1 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>\n")
    fused = "".join(lines[:start]) + kernel + lines[start] + caller + "".join(lines[ret + 1:])
    [read] = read_pipelines(parse_module(fused))
    assert_equivalent(read, tp)


def test_ir_without_qf_attributes_reads_with_fresh_names():
    text = print_module(build_module([hb.rmsnorm_per_token_fp8()]))
    bare = re.sub(r" \{qf\.[^}]*\}", "", text)
    assert "qf.name" not in bare and "qf.dims" not in bare
    [read] = read_pipelines(parse_module(bare))
    assert [p.value.name for p in read.params] == ["arg0", "arg1", "arg2"]
    assert [str(p.value.type) for p in read.params] == ["bf16[?1, ?2]", "bf16[?3]", "f32"]
    assert [c.stage for c in read.calls] == ["norm", "scale", "round"]
    q = read.calls[2].results[0].type
    assert (q.dtype.name, q.rank) == ("fp8_e4m3fn", 2)


def test_dims_attribute_roundtrip():
    shape = (Dim("M"), Dim(128), cdiv_dim("N", 32), mul_dim("A", div_dim("B", 2)))
    with make_context():
        attr = dims_attr(shape)
        assert str(attr) == '["M", 128, "cdiv(N,32)", "mul(A,div(B,2))"]'
        assert dims_from_attr(attr) == shape


def test_builder_reports_an_inconsistent_call_at_its_dsl_position():
    tp = hb.rmsnorm_per_token_fp8()
    bad = tp.calls[2]
    q = dataclasses.replace(bad.results[0], type=hb.parse_type("i8[M, N]"))
    tp.calls[2] = StageCall(bad.stage, bad.operands, bad.options, [q], bad.loc, bad.result_names)
    tp.returns[0] = q
    with pytest.raises(QfuseError) as info:
        build_module([tp])
    assert str(info.value).startswith("hand.qp:4:5: error: qf.round: result 'out' must be "
                                      "fp8_e4m3fn[M, N], got i8[?, ?]")


def test_builder_reports_a_bad_option_at_its_dsl_position():
    tp = hb.rmsnorm_per_token_fp8()
    tp.calls[0].options = {**tp.calls[0].options, "kind": "rsm"}
    with pytest.raises(QfuseError) as info:
        build_module([tp])
    assert info.value.loc == tp.calls[0].loc and "kind='rsm'" in info.value.message


# ------------------------------------------------------------------ the examples
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_roundtrip(path):
    pipelines = list(load_file(str(path)).values())
    assert pipelines
    roundtrip(pipelines)


# ------------------------------------------------- executable equivalence (reference)
def _inputs(tp) -> dict:
    """Small random inputs: every symbol 64 (M 5), floats normal, ints in [0, 4)."""
    gen = torch.Generator().manual_seed(0)
    sizes = {s: 5 if s == "M" else 64 for s in tp.symbols()}
    out = {}
    for p in tp.params:
        t = p.value.type
        if not hasattr(t, "shape"):
            continue                                           # scalars keep their default
        shape = [d.eval(sizes) for d in t.shape]
        if t.dtype.is_float:
            x = torch.randn(shape, generator=gen).to(t.dtype.torch_dtype())
        else:
            x = torch.randint(0, 4, shape, generator=gen).to(t.dtype.torch_dtype())
        out[p.value.name] = x.abs() if p.value.name in ("s", "smooth_scale") else x
    return out


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name != "kvcache.qp"],
                         ids=lambda p: p.name)
def test_read_back_pipelines_compute_the_same_bytes(path):
    pipelines = list(load_file(str(path)).values())
    for tp, read in zip(pipelines, read_pipelines(build_module(pipelines))):
        inputs = _inputs(tp)
        want, got = run_pipeline(tp, inputs), run_pipeline(read, inputs)
        assert list(got) == list(want)
        for name in want:
            a, b = want[name], got[name]
            assert a.dtype == b.dtype and a.shape == b.shape, (tp.name, name)
            assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), (tp.name, name)


def test_a_kernel_scale_fact_reads_into_its_parameter_and_a_bad_one_is_located():
    """``qf.scale_of`` on a kernel argument reads as ``ParamInfo.scale_of`` naming the
    other argument; one that names no other argument is an error at the kernel."""
    from qfuse.dialect.encoding import KERNEL_ATTR
    from qfuse.dialect.reader import read_function
    from qfuse.dsl import load_source
    from qfuse.passes import run_passes
    tp = load_source("def f(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_tensor)\n"
                     "    return round(x, s, fp8_e4m3fn), s\n", "t.qp")["f"]
    text = print_module(run_passes(build_module([tp])), debug_info=True)

    def quantise_kernel(module_text: str):
        module = parse_module(module_text)
        return read_function([op for op in module.body.operations
                              if KERNEL_ATTR in op.attributes][1])

    x, s = quantise_kernel(text).params
    assert x.scale_of is None
    assert (s.scale_of.x, s.scale_of.granularity, s.scale_of.dtype_max) == \
        (x.value, "per_tensor", 448.0)
    assert "x = 0 : i64" in text
    with pytest.raises(QfuseError) as info:
        quantise_kernel(text.replace("x = 0 : i64", "x = 1 : i64"))
    assert "names argument 1, which is not another argument" in info.value.message
    assert (info.value.loc.file, info.value.loc.line) == ("t.qp", 3)
