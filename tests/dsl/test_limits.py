"""The front end's limits (``qfuse/dsl/limits.py``): input that used to crash the parser
or the checker (RecursionError, int conversion, MLIR casts, UnicodeDecodeError) is a
located QfuseError; the bounds themselves still accept what real pipelines write."""
from __future__ import annotations

import pytest

from qfuse.dsl import load_file, load_source
from qfuse.dsl.limits import (MAX_DIM, MAX_NAME, MAX_NESTING, MAX_OPERATORS, MAX_PARAMS,
                              MAX_STAGES, number_literal)
from qfuse.errors import DSLSyntaxError, DSLTypeError, QfuseError, SourceLoc

H = "def f(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):\n"
R = "    return y\n"


def _nested(depth: int) -> str:
    return "silu(" * depth + "x" + ")" * depth


def _chain(terms: int) -> str:
    return " + ".join(["x"] * terms)


_MANY_PARAMS = "def f(" + ", ".join(f"x{i}: bf16[M, N]" for i in range(70)) + "):\n    return x0\n"

LIMIT_ERRORS = [
    # deep nesting and long chains used to reach Python's recursion limit
    ("def f(x: bf16[M, N]):\n    y = " + _nested(250) + "\n" + R, 2,
     8 + MAX_NESTING * 5 + 5, "nested more than 32 brackets deep"),
    ("def f(x: bf16[M, N]):\n    y = " + _chain(300) + "\n" + R, 2,
     9 + MAX_OPERATORS * 4 + 2, "more than 64 '+'/'*' operators"),
    # literals out of range used to raise ValueError / OverflowError / std::bad_cast
    (H + "    y = x * 1" + "0" * 5000 + "\n" + R, 2, 13, "(5001 characters) is out of range"),
    (H + "    y = x * 1" + "0" * 320 + "\n" + R, 2, 13, "integer literal"),
    (H + "    y = x * 1e309\n" + R, 2, 13, "number 1e309 is out of range"),
    ("def f(s: e8m0[M, N]):\n    y = shuffle(s, pad=9223372036854775808)\n" + R, 2, 24,
     "integer literal 9223372036854775808 is out of range"),
    ("def f(x: bf16[M, 18446744073709551616]):\n    return x\n", 1, 18, "is out of range"),
    ("def f(x: bf16[M, 4294967296]):\n    return x\n", 1, 18, f"at most {MAX_DIM}"),
    (H + "    y = x * 1e39\n" + R, 2, 13, "constant 1e+39 does not fit in f32"),
    (H + "    c = -4e38\n    y = x * c\n" + R, 2, 9, "constant -4e+38 does not fit in f32"),
    # names: keywords broke the torch op schema, long names the cache's file names,
    # 'a__k0' beside 'a' clashed with a's kernel symbol
    ("def f(x: bf16[M, N], lambda: bf16[M, N]):\n    return x\n", 1, 22,
     "'lambda' is a Python keyword and cannot name a parameter"),
    (H + "    class = silu(x)\n    return x\n", 2, 5, "cannot name a variable"),
    ("def f(x: bf16[M, if]):\n    return x\n", 1, 18, "'if' is a Python keyword and cannot name a dim"),
    ("def def(x: bf16[M, N]):\n    return x\n", 1, 5, "cannot name a pipeline"),
    ("def " + "p" * 231 + "(x: bf16[M, N]):\n    return x\n", 1, 5,
     f"231 characters long; the limit is {MAX_NAME}"),
    ("def a__k0(x: bf16[M, N]):\n    return x\n", 1, 5, "reserved for generated kernel names"),
    (_MANY_PARAMS, 1, _MANY_PARAMS.index(f"x{MAX_PARAMS}:") + 1, "at most 64 parameters"),
]


@pytest.mark.parametrize("src,line,col,message", LIMIT_ERRORS,
                         ids=[m[:40] for *_, m in LIMIT_ERRORS])
def test_limits_are_located_errors(src, line, col, message, located):
    with pytest.raises(QfuseError) as info:
        load_source(src, file="bad.qp")
    assert isinstance(info.value, (DSLSyntaxError, DSLTypeError))
    located(info.value, "bad.qp", line, col, message)


def test_limits_accept_what_pipelines_write():
    """Just under every bound still checks: the limits only cut off the absurd."""
    params = ", ".join(f"x{i}: bf16[M, N]" for i in range(MAX_PARAMS - 1))
    name = "p" * MAX_NAME
    body = (f"    a = {_nested(MAX_NESTING - 1)}\n"
            f"    b = {_chain(MAX_OPERATORS + 1)}\n"
            f"    c = x0 * 3.4e38 + x0 * -9223372036854775808\n"
            f"    return a, b, c\n")
    pipes = load_source(f"def {name}({params}, x: bf16[M, {MAX_DIM}]):\n{body}")
    assert len(pipes[name].calls) == (MAX_NESTING - 1) + MAX_OPERATORS + 3


def test_a_long_statement_chain_is_fine_and_the_stage_count_is_bounded():
    lines = [f"    y{i + 1} = silu(y{i})" for i in range(MAX_STAGES)]
    src = "def f(y0: bf16[M, N]):\n" + "\n".join(lines) + f"\n    return y{MAX_STAGES}\n"
    assert len(load_source(src)["f"].calls) == MAX_STAGES
    longer = src.replace(f"    return y{MAX_STAGES}\n",
                         f"    z = silu(y{MAX_STAGES})\n    return z\n")
    with pytest.raises(DSLTypeError) as info:
        load_source(longer, file="bad.qp")
    assert info.value.loc.line == MAX_STAGES + 2
    assert f"more than {MAX_STAGES} stages" in info.value.message


def test_derived_dims_nest_at_most_16_deep(located):
    steps = "".join(f"    x{i + 1} = act_mul(scale(x{i}, i8, per_1x32))\n" for i in range(12))
    src = "def f(x0: bf16[M, N]):\n" + steps + "    return x12\n"
    with pytest.raises(DSLTypeError) as info:
        load_source(src, file="bad.qp")
    located(info.value, "bad.qp", 9, 10, "nests more than 16 dim expressions deep")


def test_non_utf8_file_is_a_located_syntax_error(tmp_path, located):
    path = tmp_path / "latin1.qp"
    path.write_bytes("def f(x: bf16[M, N]):\n    # café\n    return x\n".encode("latin-1"))
    with pytest.raises(DSLSyntaxError) as info:
        load_file(path)
    located(info.value, str(path), 2, 10, "byte 0xe9 is not UTF-8 text")


def test_carriage_returns_and_long_lines_quote_the_right_source(tmp_path):
    """The quoted line is the one the parser counted (a lone CR starts no line), and a
    long line is quoted as a window around the caret."""
    path = tmp_path / "cr.qp"
    path.write_bytes(b"def f(x: bf16[M, N]):  # a\rb\n    y = " + b"x + " * 60 + b"?\n")
    with pytest.raises(DSLSyntaxError) as info:
        load_file(path)
    text = str(info.value)
    source, caret = text.splitlines()[1:3]
    assert info.value.loc.line == 2 and len(source) < 120
    assert source[caret.index("^")] == "?"


@pytest.mark.parametrize("text,negative,value", [
    ("0", False, 0), ("00042", True, -42), ("9223372036854775807", False, 2**63 - 1),
    ("9223372036854775808", True, -2**63), ("1.5e3", True, -1500.0), ("1e-400", False, 0.0),
])
def test_number_literals_in_range(text, negative, value):
    assert number_literal(text, negative, SourceLoc("x.qp", 1, 1)) == value


def test_the_limits_page_states_the_limits_in_force():
    from pathlib import Path
    from qfuse.dsl import limits
    page = (Path(__file__).resolve().parents[2] / "docs" / "language-limits.md").read_text()
    rows = {"brackets open at once in one statement": limits.MAX_NESTING,
            "`+` / `*` in one statement": limits.MAX_OPERATORS,
            "stage calls in one pipeline": limits.MAX_STAGES,
            "parameters of one pipeline": limits.MAX_PARAMS,
            "a name (pipeline, parameter, variable, dim)": f"{limits.MAX_NAME} characters",
            "a constant dim (`x: bf16[M, 128]`)": f"1 .. {limits.MAX_DIM}",
            "a derived dim (`N/2`, `cdiv(N, 32)`)": f"nested at most {limits.MAX_DIM_DEPTH} deep"}
    for what, value in rows.items():
        assert f"| {what} | {value}" in page, what
