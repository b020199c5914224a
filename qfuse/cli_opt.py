"""``qfuse opt``: run passes on a ``.mlir`` file and print the result (qfuse's mlir-opt).

    qfuse opt FILE.mlir [--passes qf-fuse,qf-legalize] [--split-input-file] [--debug-info]

The file is parsed and verified (the ``qf`` verifiers report at the ops' locations),
the passes run in order (none: the parsed module is printed back), and the module is
printed in MLIR's generic form for ``qf`` ops. With ``--split-input-file`` each chunk
between ``// -----`` lines is a module of its own, processed in turn; its errors go to
stderr with the line numbers of the whole file, the other chunks still run, and the
exit status is 1 when any chunk failed. The golden IR tests (``tests/passes/<pass>/``)
run through this command under ``lit``.
"""
from __future__ import annotations

import re
import sys

from .errors import QfuseError, SourceLoc

__all__ = ["register", "cmd_opt", "parse_mlir", "read_text", "SPLIT_MARKER"]

SPLIT_MARKER = re.compile(r"^// -----\s*$", re.MULTILINE)


def register(sub) -> None:
    p = sub.add_parser("opt", help="run passes on a .mlir file and print the module")
    p.add_argument("file")
    p.add_argument("--passes", default="", help="comma-separated passes or a pipeline name "
                                                "(default: none, only parse and verify)")
    p.add_argument("--split-input-file", action="store_true",
                   help="process each chunk between '// -----' lines on its own")
    p.add_argument("--debug-info", action="store_true", help="print locations")
    p.set_defaults(fn=cmd_opt)


def chunks(text: str, split: bool) -> list:
    """The modules of a file: the whole text, or each chunk padded with blank lines so
    that MLIR's line numbers are those of the whole file."""
    if not split:
        return [text]
    out, line = [], 1
    for part in SPLIT_MARKER.split(text):
        out.append("\n" * (line - 1) + part)
        line += part.count("\n")
    return out


def cmd_opt(args) -> int:
    from .dialect.text import print_module
    from .passes import run_passes
    from .runtime.lowering import install
    install()                  # the kernel lowering of qf-lower-loops / qf-map-gpu
    text = read_text(args.file)
    status, printed = 0, []
    for chunk in chunks(text, args.split_input_file):
        try:
            module = parse_mlir(chunk, args.file)
            if args.passes:
                module = run_passes(module, args.passes)
            printed.append(print_module(module, debug_info=args.debug_info))
        except QfuseError as e:
            if not args.split_input_file:
                raise in_file(e, args.file) from None
            print(str(in_file(e, args.file)), file=sys.stderr)
            status = 1
    print("// -----\n".join(printed), end="")
    return status


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise QfuseError(f"cannot read {path}: {e}") from None


def parse_mlir(text: str, path: str):
    """The verified module of ``text`` (read from ``path``); errors located in ``path``."""
    from .dialect.text import parse_module
    try:
        return parse_module(text, source=path)
    except QfuseError as e:
        raise in_file(e, path) from None


def in_file(err: QfuseError, path: str) -> QfuseError:
    """``err`` with a location in the parsed text itself (MLIR names it ``-``) reported
    under ``path``."""
    if err.loc is not None and err.loc.file == "-":
        err.loc = SourceLoc(path, err.loc.line, err.loc.col)
    return err
