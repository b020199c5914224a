"""Row-space kernels as a loop over row blocks, with row-invariant values computed once.

The emitter writes a row kernel as straight-line code for one block of rows, starting at
``ROW_LOOP_MARK``. ``loop_over_rows`` puts that body under

    if ROW_LOOP:
        <row-invariant lines of the body>
        for pid_r in range(pid, tl.cdiv(n_rows, BLOCK_M), tl.num_programs(0)):
            <the rest of the body>
    else:
        pid_r = pid
        <the body as written>

(``ROW_LOOP`` is a constexpr: a launch with ``TritonConfig.programs`` compiles the loop
and may use fewer programs than row blocks; the default compiles the body as before:
hoisted loads would stay live through it and raise its registers, 53 -> 78 for rmsnorm +
static fp8 at N = 8192 on sm_90). The loop variant first moves out of the body every top-level assignment that does not depend on the row: column
indices and masks, the loads of per-column vectors (norm weights, biases, smooth scales)
and their conversions, static scales, constants. This is loop-invariant code motion on
the generated lines; Triton's own passes do not move loads, which have memory effects.
A line stays in the loop when it names the row (``row``, ``rmask``, ``pid_r``) or any
value assigned in the loop, or when it reads through a pointer that is not in
``read_only`` (a tensor the kernel also writes). Both variants compute the same values.
"""
from __future__ import annotations

import ast

__all__ = ["ROW_LOOP_MARK", "loop_over_rows"]

ROW_LOOP_MARK = "# --- row loop ---"
_ROW_NAMES = frozenset({"row", "rmask", "pid_r"})


def _names(expr: str) -> set:
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


def _assignment(line: str):
    """``(target, expr)`` of a top-level ``name = expr`` line, else None."""
    head, sep, expr = line.partition(" = ")
    return (head, expr) if sep and head.isidentifier() else None


def loop_over_rows(lines: list, read_only: set, indent: str = "    ") -> list:
    """``lines`` (the kernel body, each indented by ``indent``) with the part after the
    mark turned into the row loop; invariant top-level assignments hoisted above it."""
    mark = next(i for i, ln in enumerate(lines) if ln.strip() == ROW_LOOP_MARK)
    head, body = list(lines[:mark]), lines[mark + 1:]
    varying = set(_ROW_NAMES)
    hoisted, kept = [], []
    for ln in body:
        top = ln.startswith(indent) and not ln.startswith(indent + " ")
        asg = _assignment(ln.strip())
        if asg is not None:
            target, expr = asg
            names = _names(expr)
            pointers = {n for n in names if n.endswith("_ptr")}
            if top and not (names & varying) and pointers <= read_only:
                hoisted.append(ln)
                continue
            varying.add(target)              # (assigned in the loop, or inside a block)
        kept.append(ln)
    loop = (f"{indent * 2}for pid_r in range(pid, tl.cdiv(n_rows, BLOCK_M), "
            "tl.num_programs(0)):")
    return (head + [f"{indent}if ROW_LOOP:"] + [indent + ln for ln in hoisted] + [loop]
            + [indent * 2 + ln if ln.strip() else ln for ln in kept]
            + [f"{indent}else:  # one program per row block: the body as written, once",
               f"{indent * 2}pid_r = pid"]
            + [indent + ln if ln.strip() else ln for ln in body])
