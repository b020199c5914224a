"""Turn lark's parse exceptions into named, located :class:`DSLSyntaxError` s.

LALR errors say "unexpected token X, expected one of {A, B}". That is turned into
the message a person would write ("missing ':' after the parameter list", "unclosed
'('", "expected an indented block", "expected a type like bf16[M, N]"), located at
the best place (the unclosed bracket, or where the ``:`` belongs), with the expected
tokens spelled as the user types them in the hint. Rules are checked in order; the
first that fits names the error, otherwise a generic "unexpected ..." is raised.
"""
from __future__ import annotations

from typing import Callable, Optional

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from ..errors import DSLSyntaxError, SourceLoc

__all__ = ["IndentMismatch", "StrayCloser", "LimitExceeded", "translate_syntax_error"]

Locate = Callable[[int, int], SourceLoc]   # (line, col) in the parsed text -> SourceLoc

_NAMED_TERMINALS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "a new line",
    "_INDENT": "an indented block", "_DEDENT": "the end of the block",
    "$END": "the end of the input", "MINUS": "'-'", "SLASH": "'/'",
}
_EXPRESSION_STARTS = {"NAME", "NUMBER", "STRING"}
_CLOSERS = {"LPAR": "')'", "LSQB": "']'"}


class IndentMismatch(Exception):
    """Raised by QfuseIndenter: a line dedents to a column no enclosing block uses."""

    def __init__(self, token: Token):
        super().__init__("unindent does not match any outer indentation level")
        self.token = token


class StrayCloser(Exception):
    """Raised by QfuseIndenter: a ``)`` or ``]`` with no open bracket, or closing the wrong one."""

    def __init__(self, token: Token, opener: Optional[Token] = None):
        super().__init__(f"unmatched '{token}'")
        self.token = token
        self.opener = opener


class LimitExceeded(Exception):
    """Raised by QfuseIndenter: a statement nests too deeply or chains too many operators
    (see ``limits.py``); located at the token that went over."""

    def __init__(self, token: Token, message: str, hint: str):
        super().__init__(message)
        self.token = token
        self.hint = hint


def _describe_expected(parser: Lark, names) -> str:
    """``"')' or ','"`` for a set of terminal names, in the user's spelling."""
    spelled = set()
    for name in names:
        if name in _NAMED_TERMINALS:
            spelled.add(_NAMED_TERMINALS[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if isinstance(pattern, PatternStr):
            spelled.add(f"'{pattern.value}'")
    items = sorted(spelled, key=lambda s: (not s.startswith("'"), s))
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _describe_token(token: Token) -> str:
    kind = token.type
    if kind == "NAME":
        return f"name '{token}'"
    if kind == "NUMBER":
        return f"number {token}"
    if kind == "STRING":
        return "string"
    if kind in ("_NL", "$END"):
        return "end of line" if kind == "_NL" else "end of input"
    if kind == "_INDENT":
        return "indent"
    if kind == "_DEDENT":
        return "end of the block"
    return f"'{token}'"


def _eof_position(text: str) -> tuple:
    lines = text.rstrip("\n").split("\n")
    return len(lines), len(lines[-1]) + 1


def _token_position(token: Token, text: str) -> tuple:
    """Where to put the caret for a token; layout tokens point at the next line's start."""
    if token.type == "$END" or getattr(token, "line", None) is None:
        return _eof_position(text)
    if token.type in ("_INDENT", "_DEDENT"):
        return token.end_line, token.end_column
    return token.line, token.column


def translate_syntax_error(err: Exception, text: str, parser: Lark,
                           locate: Locate) -> DSLSyntaxError:
    """Map a lark (or indenter) error to a DSLSyntaxError with a human message."""
    if isinstance(err, IndentMismatch):
        return DSLSyntaxError(str(err), locate(err.token.end_line, err.token.end_column),
                              hint="indent with the same spaces as an enclosing block")
    if isinstance(err, LimitExceeded):
        return DSLSyntaxError(str(err), locate(err.token.line, err.token.column), hint=err.hint)
    if isinstance(err, StrayCloser):
        opener, where = err.opener, locate(err.token.line, err.token.column)
        if opener is None:
            return DSLSyntaxError(str(err), where, hint="no bracket is open here")
        opened = locate(opener.line, opener.column)
        return DSLSyntaxError(f"'{err.token}' does not match the '{opener}' opened at line "
                              f"{opened.line}, column {opened.col}", where,
                              hint=f"expected {_CLOSERS[opener.type]}")
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_character(err, text, parser, locate)
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(err, text, parser, locate)
    assert isinstance(err, UnexpectedInput)
    line, col = _eof_position(text)
    return DSLSyntaxError("unexpected end of input", locate(line, col))


def _unexpected_character(err: UnexpectedCharacters, text: str, parser: Lark,
                          locate: Locate) -> DSLSyntaxError:
    char = err.char
    loc = locate(err.line, err.column)
    if char in "\"'":
        return DSLSyntaxError("unterminated string", loc, hint=f"close it with {char}")
    hint = None
    if char in "/-%":
        hint = "the DSL has + and * (fp32 add/mul stages); write other math as stages"
    elif char == "\t":
        hint = "tabs are only allowed as indentation"
    elif err.allowed:
        hint = f"expected {_describe_expected(parser, err.allowed)}"
    return DSLSyntaxError(f"unexpected character {char!r}", loc, hint=hint)


def _unexpected_token(err: UnexpectedToken, text: str, parser: Lark,
                      locate: Locate) -> DSLSyntaxError:
    token = err.token
    expected = set(err.accepts or err.expected)
    indenter = parser.options.postlex
    recent = [t for t in getattr(indenter, "recent", []) if t is not token]
    prev: Optional[Token] = recent[-1] if recent else None
    prev_type = prev.type if prev is not None else None
    open_brackets = getattr(indenter, "open_brackets", [])
    line, col = _token_position(token, text)
    loc = locate(line, col)
    hint = f"expected {_describe_expected(parser, expected)}" if expected else None

    def error(message: str, where: SourceLoc = loc, why: Optional[str] = hint) -> DSLSyntaxError:
        return DSLSyntaxError(message, where, hint=why)

    if token.type in ("RPAR", "RSQB"):      # the contextual lexer saw it before the indenter
        opener = open_brackets[-1] if open_brackets else None
        if opener is None or _CLOSERS[opener.type] != f"'{token}'":
            return translate_syntax_error(StrayCloser(token, opener), text, parser, locate)
    if open_brackets and (_starts_new_line(token, prev, expected) or
                          token.type == "COLON" and "RPAR" in expected):
        opener = open_brackets[-1]
        closer = _CLOSERS.get(opener.type, "')'")
        before = ("" if token.type in ("$END", "_DEDENT") else
                  f" before {_describe_token(token)} at line {loc.line}")
        return error(f"unclosed '{opener}'", locate(opener.line, opener.column),
                     f"expected {closer} to close it{before}")
    if "COLON" in expected and prev_type == "RPAR":
        return error("missing ':' after the parameter list",
                     locate(prev.end_line, prev.end_column), "expected ':'")
    if prev_type == "DEF":
        return error("expected a pipeline name after 'def'", why=f"got {_describe_token(token)}")
    if "COLON" in expected and prev_type == "NAME" and token.type == "NAME":
        return error(f"missing ':' between parameter '{prev}' and its type",
                     locate(prev.end_line, prev.end_column), why=f"write {prev}: {token}[...]")
    if "COLON" in expected and prev_type == "NAME" and token.type in ("COMMA", "RPAR", "EQUAL"):
        return error(f"parameter '{prev}' needs a type, like {prev}: bf16[M, N]",
                     locate(prev.line, prev.column))
    if prev_type == "COLON" and "NAME" in expected and "_NL" not in expected:
        return error("expected a type like bf16[M, N]", why=f"got {_describe_token(token)}")
    if token.type == "LPAR" and "LSQB" in expected and "EQUAL" in expected:
        return error("expected a type like bf16[M, N]",
                     why="shapes use square brackets: bf16[M, N]")
    if "_INDENT" in expected and token.type != "_INDENT":
        return error("expected an indented block", why="indent the body under the 'def' line")
    if token.type == "_INDENT":
        return error("unexpected indent", why="statements of one body line up")
    if "DEF" in expected and token.type not in ("DEF", "AT"):
        return error("expected 'def' at the top level",
                     why="a module is a list of 'def name(params):' pipelines")
    if expected <= {"EQUAL", "COMMA"} and "EQUAL" in expected:
        return error("a statement must be an assignment 'name = ...' or 'return ...'")
    if prev_type == "LSQB" and expected == {"NAME"}:
        return error("an index must be a name, as in s[ids]", why=f"got {_describe_token(token)}")
    if open_brackets and "COMMA" in expected and token.type in _EXPRESSION_STARTS:
        return error("missing ','", why=f"expected ',' before {_describe_token(token)}")
    if token.type == "MINUS":
        return error("'-' only negates a number: the DSL has no subtraction",
                     why="the DSL has + and * (fp32 add/mul stages)")
    if token.type == "SLASH":
        return error("'/' divides dims of a parameter type only: the DSL has no division",
                     why="multiply by a reciprocal, or quantise with round(x, s, ...)")
    if _EXPRESSION_STARTS <= expected:
        what = "return needs a value" if prev_type == "RETURN" else "expected an expression"
        return error(what, why=f"got {_describe_token(token)}")
    if token.type == "$END":
        return error("unexpected end of input")
    return error(f"unexpected {_describe_token(token)}")


def _starts_new_line(token: Token, prev: Optional[Token], expected: set) -> bool:
    """Inside brackets: did the input end, or a new line begin where a closer could go?"""
    if token.type in ("$END", "_DEDENT"):
        return True
    if prev is None or getattr(token, "line", None) is None:
        return False
    closer_fits = bool(expected & {"RPAR", "RSQB", "COMMA"})
    return closer_fits and token.line > (prev.end_line or prev.line)
