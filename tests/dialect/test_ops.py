"""The qf op classes, their verifiers and the MLIR boundary rules."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

import handbuilt as hb
from qfuse.dialect import build_module, parse_module, print_module
from qfuse.dialect.encoding import attr_name
from qfuse.dialect.mlir import PassManager, mlir_version
from qfuse.dialect.ops import (OP_CLASSES, OP_VERIFIERS, QF, make_context, op_operands,
                               op_options, op_results)
from qfuse.dialect.stages import STAGES
from qfuse.dialect.text import IRError
from qfuse.errors import QfuseError

ROOT = pathlib.Path(__file__).resolve().parents[2]

NORM_ATTRS = ('dtype = "f32", gemma = false, kind = "rms", residual_sum = "fp32", '
              'operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, '
              'resultSegmentSizes = array<i32: 1, 0>')
SCALE_ATTRS = ('amax_floor = 1.0e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 448.0 : f64, '
               'e8m0 = "roundup", granularity = "per_token", zero = "one", pow2 = false, '
               'operandSegmentSizes = array<i32: 1, 0>')
ROUND_ATTRS = ('dtype = "fp8_e4m3fn", dtype_max = 448.0 : f64, granularity = "per_token", '
               'mode = "rne", recip = "div", sat = true')


def norm_module(x="tensor<?x4096xbf16>", w="tensor<4096xbf16>", out="tensor<?x4096xf32>",
                attrs=NORM_ATTRS, x_dims='["M", 4096]', w_dims="[4096]") -> str:
    return f'''
func.func @f(%x: {x} {{qf.dims = {x_dims}, qf.name = "x"}},
             %w: {w} {{qf.dims = {w_dims}, qf.name = "w"}}, %eps: f32) -> {out} {{
  %y = "qf.norm"(%x, %w, %eps) {{{attrs}}} : ({x}, {w}, f32) -> {out} loc("bad.qp":3:9)
  return %y : {out} loc("bad.qp":4:5)
}} loc("bad.qp":1:1)'''


def quant_module(scale_t="tensor<?x1xf32>", q_t="tensor<?x?xf8E4M3FN>",
                 round_attrs=ROUND_ATTRS, scale_attrs=SCALE_ATTRS) -> str:
    return f'''
func.func @g(%x: tensor<?x?xf32> {{qf.dims = ["M", "N"], qf.name = "x"}},
             %s: {scale_t}) -> {q_t} {{
  %t = "qf.scale"(%x) {{{scale_attrs}}} : (tensor<?x?xf32>) -> tensor<?x1xf32> loc("bad.qp":7:9)
  %q = "qf.round"(%x, %s) {{{round_attrs}}} : (tensor<?x?xf32>, {scale_t}) -> {q_t} loc("bad.qp":8:9)
  return %q : {q_t} loc("bad.qp":9:5)
}} loc("bad.qp":6:1)'''


def expect_error(text: str, pattern: str, where: str = "bad.qp:3:9") -> QfuseError:
    with pytest.raises(QfuseError) as info:
        parse_module(text)
    err = info.value
    assert re.search(pattern, err.message), err.message
    assert str(err).startswith(f"{where}: error: "), str(err)
    return err


# ------------------------------------------------------------------ the op table
def test_one_op_class_per_stage():
    assert set(OP_CLASSES) == set(STAGES)
    assert set(OP_VERIFIERS) == {st.op_name for st in STAGES.values()}
    for name, cls in OP_CLASSES.items():
        assert cls.OPERATION_NAME == f"qf.{name}"
        assert OP_VERIFIERS[f"qf.{name}"].__name__ == f"verify_{name}"


def test_fields_follow_the_catalog():
    norm = OP_CLASSES["norm"]
    fields = [f.name for f in norm._fields]
    assert fields == ["x", "w", "eps", "b", "residual", "kind", "gemma", "residual_sum",
                      "dtype", "out", "residual_out"]
    cache_write = STAGES["cache_write"]
    assert attr_name(cache_write, "x") == "x_opt"        # collides with operand x
    assert attr_name(cache_write, "layout") == "layout"


def test_contexts_are_independent():
    a, b = make_context(), make_context()
    for ctx in (a, b):
        assert all(ctx.is_dialect_loaded(d) for d in ("qf", "func", "arith"))
    with a, pytest.raises(Exception):
        QF.load()                                          # once per context


def test_mlir_version_is_a_string():
    assert mlir_version().startswith("torch-mlir")


def test_valid_hand_written_ir_verifies():
    module = parse_module(norm_module() + quant_module())
    ops = list(module.body.operations[0].regions[0].blocks[0].operations)
    assert op_options(ops[0]) == {"kind": "rms", "gemma": False, "residual_sum": "fp32",
                                  "dtype": "f32"}
    operands = op_operands(ops[0])
    assert list(operands) == ["x", "w", "eps", "b", "residual"]
    assert operands["b"] is None and operands["residual"] is None
    assert op_results(ops[0])["residual_out"] is None


# --------------------------------------------------------------- no false positives
@pytest.mark.parametrize("x, w, out, x_dims, w_dims", [
    ("tensor<?x?xbf16>", "tensor<4095xbf16>", "tensor<?x?xf32>", "[]", "[]"),
    ("tensor<8x4096xbf16>", "tensor<?xbf16>", "tensor<?x?xf32>", "[]", "[]"),
    ("tensor<?x4096xbf16>", "tensor<?xbf16>", "tensor<3x4096xf32>", '["M", 4096]', '["N"]'),
])
def test_unknown_dims_are_not_errors(x, w, out, x_dims, w_dims):
    parse_module(norm_module(x, w, out, x_dims=x_dims, w_dims=w_dims))


def test_dims_unknown_without_qf_dims_after_stripping():
    text = print_module(build_module([hb.rmsnorm_per_token_fp8()]), debug_info=True)
    stripped = re.sub(r"qf\.dims = \[[^\]]*\], ", "", text)
    assert "qf.dims" not in stripped
    parse_module(stripped)


# ------------------------------------------------------------------ bad IR
def test_bad_enum_value():
    err = expect_error(norm_module(attrs=NORM_ATTRS.replace('"rms"', '"rsm"')),
                       r"qf.norm: option kind='rsm' is not one of rms, layer")
    assert "bad.qp:3:9" in str(err)


def test_bad_option_attribute_kind():
    expect_error(norm_module(attrs=NORM_ATTRS.replace("gemma = false", "gemma = 1 : i64")),
                 r"option gemma must be an i1")


def test_wrong_result_dtype():
    expect_error(quant_module(q_t="tensor<?x?xi8>"),
                 r"result 'out' must be fp8_e4m3fn\[M, N\], got i8\[\?, \?\]", "bad.qp:8:9")


def test_wrong_result_rank_and_static_dim():
    expect_error(norm_module(out="tensor<?xf32>"), r"result 'out' must be f32\[M, 4096\]")
    expect_error(norm_module(out="tensor<?x4095xf32>"), r"result 'out' must be f32\[M, 4096\]")


def test_norm_weight_of_wrong_static_length():
    expect_error(norm_module(w="tensor<4095xbf16>", w_dims="[4095]"),
                 r"norm w length must equal the last dim of x \(4095 vs 4096\) \(operand w\)")


def test_named_dims_are_not_provably_different():
    # The DSL checker rejects w: [K] against x: [M, N]; at run time K may equal N.
    parse_module(norm_module(x="tensor<?x?xbf16>", w="tensor<?xbf16>", out="tensor<?x?xf32>",
                             x_dims='["M", "N"]', w_dims='["K"]'))


def test_derived_unknown_dims_are_not_errors():
    # cdiv(?, 128) must not be compared with the static 5 (N may be 600).
    text = quant_module(scale_t="tensor<?x5xf32>",
                        round_attrs=ROUND_ATTRS.replace('"per_token"', '"per_1x128"'))
    parse_module(text)
    per_1x128 = ROUND_ATTRS.replace('"per_token"', '"per_1x128"')
    text = quant_module(scale_t="tensor<?x5xf32>", round_attrs=per_1x128)
    expect_error(text.replace("?x?xf32", "?x256xf32"),           # cdiv(256, 128) = 2
                 r"must be f32\[M, 2\], got f32\[\?, 5\]", "bad.qp:8:9")


def test_round_with_mismatched_scale_dtype():
    expect_error(quant_module(scale_t="tensor<?x1xbf16>"),
                 r"scale for per_token fp8_e4m3fn must be f32\[M, 1\], got bf16\[\?, 1\]",
                 "bad.qp:8:9")


def test_cross_option_rule():
    expect_error(quant_module(round_attrs=ROUND_ATTRS.replace('"rne"', '"trunc"')),
                 r"mode=trunc applies to i8/int4 only", "bad.qp:8:9")


def test_missing_optional_result():
    attrs = NORM_ATTRS.replace("1, 1, 1, 0, 0", "1, 1, 1, 0, 1").replace(
        "resultSegmentSizes = array<i32: 1, 0>", "resultSegmentSizes = array<i32: 1, 0>")
    text = norm_module(attrs=attrs).replace("(%x, %w, %eps)", "(%x, %w, %eps, %x)").replace(
        "f32) -> tensor<?x4096xf32> loc", "f32, tensor<?x4096xbf16>) -> tensor<?x4096xf32> loc")
    expect_error(text, r"result 'residual_out' must be present")


def test_scalar_operand_must_be_scalar():
    text = norm_module().replace("%eps: f32", "%eps: tensor<1xf32>").replace(
        "f32) -> tensor<?x4096xf32> loc", "tensor<1xf32>) -> tensor<?x4096xf32> loc")
    expect_error(text, r"eps must be a scalar")


def test_unknown_element_type():
    expect_error(norm_module(out="tensor<?x4096xf64>"), r"element type f64 is not a qfuse dtype")


def test_syntax_error_is_located_in_the_text():
    with pytest.raises(IRError) as info:
        parse_module("func.func @f( {", source="broken.mlir")
    assert info.value.loc.file == "broken.mlir" and info.value.loc.line == 1


def test_unregistered_op():
    text = norm_module().replace('"qf.norm"', '"qf.nrom"')
    with pytest.raises(IRError) as info:
        parse_module(text)
    assert "qf.nrom" in info.value.message and info.value.loc.file == "bad.qp"


# -------------------------------------------------------------------- traits
def test_dead_pure_op_is_removed_by_canonicalize():
    b = hb.PipelineBuilder("dead")
    x = b.param("x", "bf16[M, N]")
    b.call("silu", "unused", x=x)
    live = b.call("gelu", "g", x=x)
    module = build_module([b.ret(live)])
    assert '"qf.silu"' in print_module(module)
    with module.context:
        PassManager.parse("builtin.module(canonicalize)").run(module.operation)
    text = print_module(module)
    assert '"qf.silu"' not in text and '"qf.gelu"' in text


# -------------------------------------------------------------- boundaries
def test_only_mlir_py_imports_the_bindings():
    offenders = [p for p in (ROOT / "qfuse").rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+torch_mlir", p.read_text(), re.M)
                 and p != ROOT / "qfuse" / "dialect" / "mlir.py"]
    assert offenders == []


def test_dialect_package_import_is_light():
    code = ("import sys, qfuse.dialect, qfuse.dialect.stages, qfuse.dialect.types; "
            "assert 'torch_mlir' not in sys.modules, 'MLIR imported'; "
            "qfuse.dialect.make_context; assert 'torch_mlir' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
