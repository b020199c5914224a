"""Dim expressions in parameter types (``e8m0[M, cdiv(N, 32)]``): parsing, checking,
the IR and JSON forms, and binding on every backend."""
from __future__ import annotations

import json

import pytest
import torch

from qfuse import quant_pipeline
from qfuse.dialect.types import Dim, cdiv_dim, div_dim, mul_dim, round_up_dim
from qfuse.dsl import load_source
from qfuse.errors import DSLTypeError, InputError

SRC = """
def mx_given(x: bf16[M, N], s: e8m0[M, cdiv(N, 32)]):
    return pack(round(x, s, fp4_e2m1))

def shapes(a: bf16[M, N], b: f32[round_up(M, 256) / 8, (N * 2)], c: u8[cdiv(100, 32)]):
    return a
"""


def test_dim_expressions_become_dims():
    p = load_source(SRC)
    m, n = Dim("M"), Dim("N")
    assert p["mx_given"].params[1].value.type.shape == (m, cdiv_dim(n, 32))
    b, c = (q.value.type.shape for q in p["shapes"].params[1:])
    assert b == (div_dim(round_up_dim(m, 256), 8), mul_dim(n, 2))
    assert c == (Dim(4),)                              # constants fold
    # an external mx scale needs no granularity= (E8M0 bytes are mx) and types as one
    rnd = p["mx_given"].calls[0]
    assert rnd.options["granularity"] == "mx"


def test_dims_in_the_ir_and_json_round_trip():
    from qfuse.dialect.builder import build_module
    from qfuse.dialect.reader import read_pipelines
    from qfuse.dialect.text import print_module
    from qfuse.runtime.program_json import pipeline_from_json, pipeline_to_json
    tp = load_source(SRC)["mx_given"]
    text = print_module(build_module([tp]))
    assert 'qf.dims = ["M", "cdiv(N,32)"]' in text
    back = read_pipelines(build_module([tp]))[0]
    assert back.params[1].value.type == tp.params[1].value.type
    j = json.loads(json.dumps(pipeline_to_json(tp)))
    assert pipeline_from_json(j).params[1].value.type == tp.params[1].value.type


BAD = [
    ("def f(x: bf16[M, N], s: e8m0[M, cdvi(N, 32)]):\n    return x\n", 1, 33,
     "unknown dim function 'cdvi'"),
    ("def f(x: bf16[M, N], s: e8m0[M, cdiv(N, 0)]):\n    return x\n", 1, 41,
     "dims must be positive"),
    ("def f(x: bf16[M, N], s: e8m0[M, cdiv(K, 32)]):\n    return x\n", 1, 33,
     "'K' appears only inside dim expressions"),
    ("def f(x: bf16[M, N / (1 / 2)]):\n    return x\n", 1, 23,
     "dims must be positive and at most 2147483647, got 0"),
]


@pytest.mark.parametrize("src,line,col,message", BAD, ids=[m for *_, m in BAD])
def test_bad_dim_expressions_are_located(src, line, col, message, located):
    with pytest.raises(DSLTypeError) as info:
        load_source(src, file="bad.qp")
    located(info.value, "bad.qp", line, col, message)


@quant_pipeline
def mx_given(x: bf16[M, N], s: e8m0[M, cdiv(N, 32)]):
    return pack(round(x, s, fp4_e2m1))


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("n", [28, 64, 200])
def test_an_external_mx_scale_binds_through_its_expression(backend, n):
    """AITER's quantise-with-a-given-E8M0-scale: the scale's width is cdiv(N, 32) for any
    N (a partial last block too); a wrong width names the expression and the sizes."""
    pipe = quant_pipeline(backend=backend)(mx_given.__wrapped__)
    g = torch.Generator().manual_seed(n)
    x = torch.randn(5, n, generator=g).bfloat16()
    s = torch.randint(118, 130, (5, -(-n // 32)), dtype=torch.uint8, generator=g)
    want = quant_pipeline(backend="reference")(mx_given.__wrapped__)(x, s)
    assert torch.equal(pipe(x, s.view(torch.float8_e8m0fnu)), want)
    with pytest.raises(InputError, match=r"s: expected e8m0\[M, cdiv\(N, 32\)\].*dim 1 must be "
                                         r"cdiv\(N, 32\) = \d+ \(N=\d+\)"):
        pipe(x, torch.zeros(5, 9, dtype=torch.uint8))
