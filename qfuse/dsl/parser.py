"""Parse qfuse DSL text (a ``.qp`` file or a ``@quant_pipeline`` function) into the AST.

The grammar is ``qfuse.lark`` (LALR, Python-like indentation through
:class:`QfuseIndenter`). Every AST node carries the ``SourceLoc`` of its first token,
shifted so that it points into the real file: ``parse_function`` reads the function
from its ``.py`` file and reports lines and columns there. Lark's exceptions never
escape: they become :class:`~qfuse.errors.DSLSyntaxError` with a named message
(``missing ':' after the parameter list``, ``unclosed '('``, ...), a caret, and
what was expected (see ``syntax_errors.py``). The bounds of ``limits.py`` are enforced
here, on tokens, before any recursive walk sees the input: bracket nesting and operator
chains per statement, literal ranges, and the rules for user-chosen names.
"""
from __future__ import annotations

import ast as pyast
import functools
import inspect
import os
import threading
from typing import Callable

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError
from lark.indenter import Indenter

from ..errors import DSLSyntaxError, QfuseError, SourceLoc, register_source
from . import ast as A
from .limits import MAX_NESTING, MAX_OPERATORS, check_identifier, number_literal
from .syntax_errors import IndentMismatch, LimitExceeded, StrayCloser, translate_syntax_error

__all__ = ["QfuseIndenter", "parse_source", "parse_file", "parse_function"]


class QfuseIndenter(Indenter):
    """Python-style indentation for the DSL, plus the bookkeeping error messages need.

    Besides emitting ``_INDENT``/``_DEDENT`` it keeps the stack of open brackets (so an
    error can point at an unclosed ``(``) and the last tokens it emitted (so an error
    knows what came just before the offending token).
    """

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    OPERATOR_types = ("PLUS", "STAR", "SLASH")
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def process(self, stream):
        self.open_brackets: list[Token] = []
        self.recent: list[Token] = []
        return super().process(stream)

    def handle_NL(self, token: Token):
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            return
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
        if indent != self.indent_level[-1]:
            raise IndentMismatch(token)

    def _process(self, stream):
        for token in super()._process(self._track_brackets(stream)):
            self.recent = (self.recent + [token])[-3:]
            yield token

    def _track_brackets(self, stream):
        operators = 0              # '+' / '*' ('/' in dims) in the current statement
        for token in stream:
            if token.type == self.NL_type and not self.open_brackets:
                operators = 0
            elif token.type in self.OPERATOR_types:
                operators += 1
                if operators > MAX_OPERATORS:
                    raise LimitExceeded(token, f"more than {MAX_OPERATORS} '+'/'*' operators "
                                               f"in one statement",
                                        "split the chain: assign partial results to names")
            if token.type in self.OPEN_PAREN_types:
                self.open_brackets.append(token)
                if len(self.open_brackets) > MAX_NESTING:
                    raise LimitExceeded(token, f"expression nested more than {MAX_NESTING} "
                                               f"brackets deep",
                                        "assign inner results to names")
            elif token.type in self.CLOSE_PAREN_types:
                if not self.open_brackets:
                    raise StrayCloser(token)
                opener = self.open_brackets.pop()
                if self.CLOSE_PAREN_types.index(token.type) != \
                        self.OPEN_PAREN_types.index(opener.type):
                    raise StrayCloser(token, opener)
            yield token


_PARSE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open("qfuse.lark", rel_to=__file__, parser="lalr", postlex=QfuseIndenter(),
                     propagate_positions=True, maybe_placeholders=True)


@v_args(meta=True, inline=True)
class _ToAST(Transformer):
    """Lark tree -> ``qfuse.dsl.ast`` nodes, each located in the original file."""

    def __init__(self, file: str, line_offset: int, col_offset: int):
        super().__init__()
        self.file, self.line_offset, self.col_offset = file, line_offset, col_offset

    def loc(self, line: int, col: int) -> SourceLoc:
        return SourceLoc(self.file, line + self.line_offset, col + self.col_offset)

    def at(self, item) -> SourceLoc:
        """Location of a token or of a rule's meta."""
        return self.loc(item.line, item.column)

    def start(self, meta, *pipelines):
        return A.ModuleAST(self.loc(1, 1), self.file, tuple(pipelines))

    def pipeline(self, meta, *children):
        *decorators, name, params, body = children
        check_identifier(str(name), self.at(name), "pipeline")
        return A.PipelineDef(self.at(name), str(name), params or (), body, tuple(decorators))

    def decorator(self, meta, name, arguments):
        args, kwargs = arguments or ((), ())
        return A.Call(self.at(meta), name, args, kwargs)

    def dotted_name(self, meta, *parts):
        return ".".join(parts)

    def params(self, meta, *params):
        return tuple(params)

    def param(self, meta, name, type_, default):
        check_identifier(str(name), self.at(name), "parameter")
        return A.Param(self.at(name), str(name), type_, default)

    def type(self, meta, name, dims):
        if dims is None:
            return A.ScalarTypeExpr(self.at(name), str(name))
        return A.TensorTypeExpr(self.at(name), str(name), dims)

    def dims(self, meta, *dims):
        return tuple(dims)

    def dim_number(self, meta, token):
        value = number_literal(str(token), False, self.at(token))
        if not isinstance(value, int):
            raise DSLSyntaxError(f"a dim is a name or an integer, not {token}", self.at(token))
        return A.DimRef(self.at(token), value)

    def dim_name(self, meta, token):
        check_identifier(str(token), self.at(token), "dim")
        return A.DimRef(self.at(token), str(token))

    def dim_mul(self, meta, a, op, b):
        return A.DimExpr(a.loc, "mul", a, b)

    def dim_div(self, meta, a, op, b):
        return A.DimExpr(a.loc, "div", a, b)

    def dim_call(self, meta, name, a, b):
        return A.DimExpr(self.at(name), str(name), a, b)

    def body(self, meta, docstring, *stmts):
        return tuple(stmts)

    def docstring(self, meta, text):
        return None

    def assign(self, meta, targets, value):
        return A.Assign(self.at(meta), targets, value)

    def targets(self, meta, *names):
        for n in names:
            check_identifier(str(n), self.at(n), "variable")
        return tuple(A.Name(self.at(n), str(n)) for n in names)

    def return_stmt(self, meta, *values):
        return A.Return(self.at(meta), tuple(values))

    def binop(self, meta, left, op, right):
        return A.BinOp(self.at(op), str(op), left, right)

    def name(self, meta, token):
        return A.Name(self.at(token), str(token))

    def call(self, meta, name, arguments):
        args, kwargs = arguments or ((), ())
        return A.Call(self.at(name), str(name), args, kwargs)

    def arguments(self, meta, *items):
        args, kwargs = [], []
        for item in items:
            if isinstance(item, A.Keyword):
                kwargs.append(item)
            elif kwargs:
                raise DSLSyntaxError("positional argument follows keyword argument", item.loc,
                                     hint="put positional arguments before name=value ones")
            else:
                args.append(item)
        return tuple(args), tuple(kwargs)

    def kwarg(self, meta, name, value):
        return A.Keyword(self.at(name), str(name), value)

    def index(self, meta, value, index):
        return A.Index(self.at(value), A.Name(self.at(value), str(value)),
                       A.Name(self.at(index), str(index)))

    def number(self, meta, *tokens):
        value = number_literal(str(tokens[-1]), len(tokens) == 2, self.at(tokens[0]))
        return A.Number(self.at(tokens[0]), value)

    def string(self, meta, token):
        try:
            value = pyast.literal_eval(str(token))
        except (ValueError, SyntaxError):
            raise DSLSyntaxError("malformed string literal", self.at(token)) from None
        return A.String(self.at(token), value)

    def true(self, meta, token):
        return A.Bool(self.at(token), True)

    def none(self, meta, token):
        return A.NoneLit(self.at(token))

    def ifexpr(self, meta, then, cond, other):
        return A.IfExpr(then.loc, cond, then, other)

    def cond_true(self, meta, name):
        return A.Cond(self.at(name), str(name), A.CondTest.TRUE)

    def cond_not(self, meta, name):
        return A.Cond(self.at(meta), str(name), A.CondTest.NOT)

    def cond_none(self, meta, name, none):
        return A.Cond(self.at(name), str(name), A.CondTest.NONE)

    def cond_not_none(self, meta, name, none):
        return A.Cond(self.at(name), str(name), A.CondTest.NOT_NONE)

    def false(self, meta, token):
        return A.Bool(self.at(token), False)


def _parse(text: str, file: str, line_offset: int = 0, col_offset: int = 0) -> A.ModuleAST:
    if not text.endswith("\n"):
        text += "\n"
    parser = _lark()

    def located(line: int, col: int) -> SourceLoc:
        return SourceLoc(file, line + line_offset, col + col_offset)

    with _PARSE_LOCK:            # the indenter keeps per-parse state that errors read
        try:
            tree = parser.parse(text)
        except (UnexpectedInput, IndentMismatch, StrayCloser, LimitExceeded) as err:
            raise translate_syntax_error(err, text, parser, located) from None
    try:
        return _ToAST(file, line_offset, col_offset).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, QfuseError):
            raise err.orig_exc from None
        raise


def parse_source(text: str, file: str = "<string>", line_offset: int = 0) -> A.ModuleAST:
    """Parse DSL ``text``; node locations name ``file`` and are shifted by ``line_offset`` lines.

    Raises :class:`DSLSyntaxError` (``file:line:col: error: ...`` with a caret).
    """
    register_source(file, "\n" * line_offset + text)
    return _parse(text, file, line_offset)


def parse_file(path: str | os.PathLike) -> A.ModuleAST:
    """Parse a ``.qp`` file; locations name ``path`` as given."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise QfuseError(f"cannot read {file}: {err.strerror or err}") from None
    text = _decode(data, file)
    register_source(file, text)
    return _parse(text, file)


def _decode(data: bytes, file: str) -> str:
    """UTF-8 text of a file; a byte that is not UTF-8 is a DSLSyntaxError at its position."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        col = len(data[line_start:err.start].decode("utf-8")) + 1
        register_source(file, data.decode("utf-8", errors="replace"))
        raise DSLSyntaxError(f"byte 0x{data[err.start]:02x} is not UTF-8 text",
                             SourceLoc(file, line, col),
                             hint="save the file as UTF-8") from None


def parse_function(fn: Callable) -> A.PipelineDef:
    """Parse the source of a (decorated) Python function as one pipeline.

    The function is never executed. Locations point at the real ``.py`` file, line and
    column; decorator lines are skipped (the decorator already has its arguments).
    """
    fn = inspect.unwrap(fn)
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        lines, first_line = inspect.getsourcelines(fn)
        file = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except (OSError, TypeError) as err:
        raise QfuseError(f"cannot read the source of {name}: {err}",
                         hint="define the pipeline in a file, or use parse_source") from None
    first_line = max(first_line, 1)
    indent = len(lines[0]) - len(lines[0].lstrip(" \t"))
    dedented = [ln[indent:] if ln[:indent].strip() == "" else ln.lstrip(" \t") for ln in lines]
    def_line = _def_line("".join(dedented), name)
    text = "".join("\n" if i < def_line - 1 else ln for i, ln in enumerate(dedented))
    if not os.path.exists(file):
        register_source(file, "\n" * (first_line - 1) + "".join(lines))
    module = _parse(text, file, first_line - 1, indent)
    if len(module.pipelines) != 1:
        raise QfuseError(f"expected one function definition in the source of {name}")
    return module.pipelines[0]


def _def_line(text: str, name: str) -> int:
    """1-based line of ``def`` in a function's source (after its decorators)."""
    try:
        tree = pyast.parse(text)
    except SyntaxError:
        return 1
    node = tree.body[0] if tree.body else None
    if isinstance(node, pyast.AsyncFunctionDef):
        raise QfuseError(f"{name} is an async function; a pipeline is a plain def")
    return node.lineno if isinstance(node, pyast.FunctionDef) else 1
