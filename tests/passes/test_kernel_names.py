"""Kernel symbols (``<pipeline>__k<i>``) can never clash with a pipeline's symbol or with
another pipeline's kernels: the DSL reserves ``__`` in pipeline names, and qf-fuse
refuses hand-written MLIR that would clash (instead of MLIR's "redefinition of symbol"
with a whole function dumped)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfuse.dialect.builder import build_module
from qfuse.dialect.mlir import ir
from qfuse.dialect.text import parse_module, print_module
from qfuse.dsl import load_source
from qfuse.dsl.limits import check_identifier
from qfuse.errors import QfuseError, SourceLoc
from qfuse.passes import run_passes
from qfuse.passes.plan import kernel_name

TWO_KERNELS = "    s = scale(x, fp8_e4m3fn, per_tensor)\n    return round(x, s, fp8_e4m3fn), s\n"


def _pipelines(names) -> str:
    return "".join(f"def {n}(x: bf16[M, N]):\n{TWO_KERNELS}\n" for n in names)


def test_a_pipeline_named_like_a_kernel_is_refused_where_it_is_named():
    with pytest.raises(QfuseError) as info:
        load_source(_pipelines(["a", "a__k0"]), file="bad.qp")
    assert str(info.value).startswith("bad.qp:5:5: error: pipeline name 'a__k0' contains '__'")


def test_neighbouring_names_compile_side_by_side():
    names = ["a", "a_", "a_k0", "k0", "a_k", "_a"]
    module = run_passes(build_module(list(load_source(_pipelines(names)).values())))
    symbols = [ir.StringAttr(op.operation.attributes["sym_name"]).value
               for op in module.body.operations]
    assert len(symbols) == len(set(symbols)) == 3 * len(names)


_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


def _allowed(name: str) -> bool:
    try:
        check_identifier(name, SourceLoc("t.qp", 1, 1), "pipeline")
    except QfuseError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(_NAMES.filter(_allowed), _NAMES.filter(_allowed), st.integers(0, 12), st.integers(0, 12))
def test_kernel_names_are_disjoint_from_pipeline_names_and_each_other(a, b, i, j):
    assert kernel_name(a, i) != b
    if (a, i) != (b, j):
        assert kernel_name(a, i) != kernel_name(b, j)


def test_hand_written_mlir_that_would_clash_is_a_clear_error():
    text = print_module(build_module(list(load_source(_pipelines(["a", "b"]), "t.qp").values())),
                        debug_info=True)
    with pytest.raises(QfuseError) as info:
        run_passes(parse_module(text.replace("@b(", "@a__k1(")))
    assert "would get a kernel named 'a__k1', which is also a pipeline's name" in str(info.value)
    assert "redefinition" not in str(info.value)
    assert (info.value.loc.file, info.value.loc.line) == ("t.qp", 1)
