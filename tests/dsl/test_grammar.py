"""The DSL grammar and parser: examples, AST shape and locations, named syntax errors,
and parsing a decorated Python function in place."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfuse.dsl import ast as A
from qfuse.dsl import load_source, parse_file, parse_function, parse_source
from qfuse.errors import DSLSyntaxError, QfuseError, SourceLoc

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.qp"))


def _recording(fn=None, **options):
    """A stand-in for @quant_pipeline that only records the function (bare or with kwargs)."""
    if fn is None:
        return lambda f: _recording(f, **options)
    fn.recorded_options = options
    return fn


@_recording
def add_rmsnorm_fp8(x: bf16[M, N], res: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):  # noqa: F821
    h = x + res                                                      # LINE:add
    y = norm(h, w, eps)                                              # noqa: F821
    s = scale(y, fp8_e4m3fn, per_token)                              # noqa: F821
    q = round(y, s, fp8_e4m3fn)                                      # noqa: F821
    return q, s, h


@_recording(backend="triton")
def broken_pipeline(x: bf16[M, N]):                                  # noqa: F821
    s = scael(x, i8, per_token)                                      # LINE:broken
    return s


def _line_of(marker: str) -> int:
    for number, text in enumerate(Path(__file__).read_text().splitlines(), 1):
        if re.search(rf"# LINE:{marker}\b", text):
            return number
    raise AssertionError(marker)


# ------------------------------------------------------------------------ examples
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_parse(path):
    module = parse_file(path)
    assert module.pipelines
    for pipe in module.pipelines:
        assert pipe.loc.file == str(path)
        assert isinstance(pipe.body[-1], A.Return)


def test_ast_shape_and_locations():
    src = ("# leading comment\n"
           "\n"
           "@quant_pipeline(backend=\"triton\")\n"
           "def f(x: bf16[M, 128], eps: f32 = -1e-6,\n"
           "      k: i32 = 4):\n"
           "    \"\"\"A docstring,\n"
           "    on two lines.\"\"\"\n"
           "    y, r = norm(x, w, eps,   # comment inside the call\n"
           "                residual=x, gemma=True)\n"
           "    z = smooth(y, s[ids]) + 2 * y\n"
           "    return z, r\n")
    pipe = parse_source(src, file="t.qp").pipelines[0]
    assert pipe.name == "f" and pipe.loc == SourceLoc("t.qp", 4, 5)
    (deco,) = pipe.decorators
    assert deco.func == "quant_pipeline" and deco.kwargs[0].value == A.String(
        SourceLoc("t.qp", 3, 25), "triton")
    x, eps, k = pipe.params
    assert x.type.dtype == "bf16" and [d.value for d in x.type.dims] == ["M", 128]
    assert x.type.dims[1].loc == SourceLoc("t.qp", 4, 18)
    assert isinstance(eps.type, A.ScalarTypeExpr) and eps.default.value == -1e-6
    assert k.default.value == 4 and isinstance(k.default.value, int)
    assign, binop_assign, ret = pipe.body
    assert [t.id for t in assign.targets] == ["y", "r"]
    call = assign.value
    assert call.func == "norm" and call.loc == SourceLoc("t.qp", 8, 12)
    assert [a.id for a in call.args] == ["x", "w", "eps"]
    assert [(kw.name, kw.loc.line) for kw in call.kwargs] == [("residual", 9), ("gemma", 9)]
    assert call.kwargs[1].value == A.Bool(SourceLoc("t.qp", 9, 35), True)
    add = binop_assign.value
    assert add.op == "+" and add.loc == SourceLoc("t.qp", 10, 27)
    assert isinstance(add.right, A.BinOp) and add.right.op == "*"       # precedence
    assert add.right.left == A.Number(SourceLoc("t.qp", 10, 29), 2)
    index = add.left.args[1]
    assert isinstance(index, A.Index) and (index.value.id, index.index.id) == ("s", "ids")
    assert [v.id for v in ret.values] == ["z", "r"]


def test_parentheses_bool_and_string_literals():
    pipe = parse_source("def g(x: f32[N]):\n    return (x + x) * x, h(a='s', b=false)\n"
                        ).pipelines[0]
    first, second = pipe.body[0].values
    assert first.op == "*" and first.left.op == "+"
    assert second.kwargs[0].value.value == "s" and second.kwargs[1].value.value is False


def test_line_offset_and_empty_module():
    assert parse_source("# nothing\n\n").pipelines == ()
    pipe = parse_source("def f(x: f32[N]):\n    return x\n", file="e.py", line_offset=40)
    assert pipe.pipelines[0].loc == SourceLoc("e.py", 41, 5)


# ---------------------------------------------------------------- syntax errors
BODY = "def f(x: bf16[M, N]):\n"
SYNTAX_ERRORS = [
    ("def f(x: bf16[M, N])\n    return x\n", 1, 21, "missing ':' after the parameter list"),
    (BODY + "    y = norm(x, w\n    s = scale(y)\n    return s\n", 2, 13, "unclosed '('"),
    (BODY + "    y = norm(x, w\n", 2, 13, "unclosed '('"),
    ("def f(x: bf16[M, N]\n    return x\n", 1, 6, "unclosed '('"),
    ("def f(x: bf16[M, N]:\n    return x\n", 1, 6, "unclosed '('"),
    ("def f(x: bf16[M, N):\n    return x\n", 1, 19, "')' does not match the '['"),
    (BODY + "    return x)\n", 2, 13, "unmatched ')'"),
    (BODY + "return x\n", 2, 1, "expected an indented block"),
    (BODY, 1, 22, "expected an indented block"),
    ("def f(x: [M, N]):\n    return x\n", 1, 10, "expected a type like bf16[M, N]"),
    ("def f(x: bf16(M, N)):\n    return x\n", 1, 14, "expected a type like bf16[M, N]"),
    ("def f(x, y: bf16[M]):\n    return x\n", 1, 7, "parameter 'x' needs a type"),
    (BODY + "    y = x\n        z = y\n    return z\n", 3, 9, "unexpected indent"),
    (BODY + "    y = x\n  z = y\n    return z\n", 3, 3, "unindent does not match"),
    (BODY + "    foo(x)\n    return x\n", 2, 8, "a statement must be an assignment"),
    ("x = 1\n", 1, 1, "expected 'def' at the top level"),
    (BODY + "    y = x - x\n    return y\n", 2, 11, "'-' only negates a number"),
    (BODY + "    y = x / x\n    return y\n", 2, 11, "'/' divides dims of a parameter type only"),
    (BODY + "    y = x % x\n    return y\n", 2, 11, "unexpected character '%'"),
    ("def f(x: bf16[M, N +]):\n    return x\n", 1, 20, "unexpected '+'"),
    (BODY + "    y = \n    return y\n", 2, 9, "expected an expression"),
    (BODY + "    return\n", 2, 11, "return needs a value"),
    (BODY + "    y = scale(x fp8_e4m3fn)\n    return y\n", 2, 17, "missing ','"),
    (BODY + "    y = scale(x, dtype=i8, per_token)\n    return y\n", 2, 28,
     "positional argument follows keyword argument"),
    (BODY + "    y = scale(x, \"abc)\n    return y\n", 2, 18, "unterminated string"),
    ("def f(x: bf16[M, 1.5]):\n    return x\n", 1, 18, "a dim is a name or an integer"),
    (BODY + "    y = smooth(x, s[0])\n    return y\n", 2, 21, "an index must be a name"),
    (BODY + "    return x,,\n", 2, 14, "expected an expression"),
    ("def f(x: bf16[M, N], w bf16[N]):\n    return x\n", 1, 23, "missing ':' between parameter"),
    ("def (x: f32[N]):\n    return x\n", 1, 5, "expected a pipeline name after 'def'"),
]


@pytest.mark.parametrize("src,line,col,message", SYNTAX_ERRORS,
                         ids=[m for *_, m in SYNTAX_ERRORS])
def test_syntax_errors_are_named_and_located(src, line, col, message, located):
    with pytest.raises(DSLSyntaxError) as info:
        parse_source(src, file="bad.qp")
    located(info.value, "bad.qp", line, col, message)
    assert "lark" not in str(info.value).lower()


def test_syntax_error_hint_says_what_was_expected():
    with pytest.raises(DSLSyntaxError) as info:
        parse_source("def f(x: bf16[M, N])\n    return x\n")
    assert "hint: expected ':'" in str(info.value)


def test_syntax_error_with_line_offset_quotes_the_right_line(located):
    with pytest.raises(DSLSyntaxError) as info:
        parse_source(BODY + "    y = x / x\n    return y\n", file="off.py", line_offset=9)
    located(info.value, "off.py", 11, 11, "'/' divides dims of a parameter type only")
    assert "y = x / x" in str(info.value)


_GOOD = ("def f(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):\n"
         "    s = scale(norm(x, w, eps), i8, per_token)\n    q = round(x, s, i8)\n    return q, s\n")
_PIECES = ["def", " f", "(", ")", ":", "\n", "    ", "x", ",", "=", "[", "]", " bf16", "1e-6", "-",
           "#c", '"s"', "'''d\n'''", "@", "return ", "+", "*", "\t", "M", "scale", "s", " ",
           "\\\n", "True", "i8", ".", "\r\n", "/", '"']


@st.composite
def _mangled_sources(draw):
    text = list(_GOOD)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text.insert(pos, draw(st.sampled_from(_PIECES)))
        else:
            del text[pos:pos + draw(st.integers(1, 3))]
    return "".join(text)


@settings(max_examples=400, deadline=None)
@given(_mangled_sources())
def test_mangled_sources_raise_only_located_qfuse_errors(src):
    try:
        load_source(src, file="fuzz.qp")
    except QfuseError as err:
        assert err.loc is not None and err.loc.file == "fuzz.qp"
        assert "Traceback" not in str(err)


# ------------------------------------------------------------ decorated functions
def test_parse_function_points_into_this_file():
    pipe = parse_function(add_rmsnorm_fp8)
    here = str(Path(__file__).resolve())
    assert pipe.name == "add_rmsnorm_fp8"
    assert Path(pipe.loc.file).resolve() == Path(here)
    def_line = inspect.getsourcelines(add_rmsnorm_fp8)[1] + 1        # after the decorator
    assert pipe.loc.line == def_line and pipe.loc.col == 5
    first = pipe.body[0]
    assert first.loc.line == _line_of("add") and first.loc.col == 5
    assert first.value.loc.col == len("    h = x ") + 1                 # the '+'
    assert [p.name for p in pipe.params] == ["x", "res", "w", "eps"]


def test_parse_function_nested_shifts_columns():
    @_recording
    def inner(x: bf16[M, N]):                                        # noqa: F821
        s = scale(x, i8, per_token)                                  # LINE:inner  # noqa: F821
        return s

    pipe = parse_function(inner)
    call = pipe.body[0].value
    line = _line_of("inner")
    assert call.loc.line == line
    assert call.loc.col == Path(__file__).read_text().splitlines()[line - 1].index("scale(") + 1


def test_parse_function_errors_quote_the_real_file(located):
    from qfuse.dsl import check_pipeline
    from qfuse.errors import DSLTypeError
    pipe = parse_function(broken_pipeline)
    assert broken_pipeline.recorded_options == {"backend": "triton"}
    with pytest.raises(DSLTypeError) as info:
        check_pipeline(pipe)
    line = _line_of("broken")
    located(info.value, pipe.loc.file, line, 9, "unknown stage 'scael'")
    assert "s = scael(x, i8, per_token)" in str(info.value)
