"""A fused pipeline function on buffers: what it becomes when its kernels are lowered.

``qf-lower-loops`` and ``qf-map-gpu`` turn each kernel function into a function on
memrefs in destination-passing style (its parameters, then its outputs; no results), so
the pipeline function that calls it changes with it, or the module would not verify.
It becomes the program the runtime's executor runs (:mod:`qfuse.runtime.executor`),
written out:

* its parameters become memrefs of the type the kernels take them as (a scalar stays a
  scalar; a tensor no kernel reads keeps its tensor type);
* every kernel output is a buffer argument of the pipeline function, in call order:
  ``{qf.name = <value>, qf.output}`` where the pipeline returns it, ``qf.buffer`` where
  only a later kernel reads it (the caller allocates both from the kernels' declared
  types, as the runtime does; a returned tensor and a scratch tensor differ only in
  who keeps it). An output a kernel updates in place (a KV cache, its scales) is the
  parameter's buffer itself;
* each ``func.call`` passes the buffers: a ``func.call`` at the loop level and for a
  host step (``all_reduce``, a private declaration the runtime implements), a
  ``gpu.launch_func`` at the ``gpu`` level, with the kernel's launch rule: one block of
  ``block`` threads per row of its rows argument (``memref.dim`` 0), or for a grid-wide
  amax ``max(1, min(rows, max_blocks))`` blocks and a zeroed workspace allocated for the
  launch;
* ``qf.returns = [[return name, value], ...]`` on the function says which buffer each
  return of the pipeline is (a value may be returned twice, a parameter returned as it
  is).

Upstream ``one-shot-bufferize{bufferize-function-boundaries}`` would give the same
calls but returns fresh buffers out of the functions, which a caller that allocates
(the runtime, the launchers) cannot use; this is its ``buffer-results-to-out-params``
form, written directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..dialect.encoding import source_loc
from ..dialect.mlir import ir
from ..errors import UnsupportedError

__all__ = ["Callee", "bufferize_pipeline", "attr_name"]


@dataclass
class Callee:
    """What a pipeline's call needs to know of one lowered kernel."""
    types: list                 # ir.Type of every argument: parameters, outputs (+ workspace)
    n_params: int
    result_names: list          # the qf.name of each output
    in_place: dict              # output index -> parameter index (updated in place)
    launch: Optional[dict] = None   # gpu level: grid, rows_arg, block, max_blocks
    host: bool = False


def attr_name(attrs) -> str:
    """The ``qf.name`` of an argument's or result's attribute dictionary."""
    return ir.StringAttr(ir.DictAttr(attrs)["qf.name"]).value


def _symbol(op, key: str = "sym_name") -> str:
    a = op.attributes[key]
    return ir.FlatSymbolRefAttr(a).value if key == "callee" else ir.StringAttr(a).value


@dataclass
class _Body:
    """The lines of the new pipeline function, its constants defined once at the top."""
    lines: list = field(default_factory=list)
    consts: dict = field(default_factory=dict)
    n: int = 0

    def const(self, value: int, type_: str = "index") -> str:
        key = (value, type_)
        if key not in self.consts:
            self.consts[key] = f"%c{value}_{type_}"
        return self.consts[key]

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"%{hint}{self.n}"

    def text(self) -> str:
        head = [f"{n} = arith.constant {v} : {t}" for (v, t), n in self.consts.items()]
        return "\n".join("    " + line for line in head + self.lines)


def _launch(body: _Body, module: str, callee: str, args: list, c: Callee) -> None:
    """``gpu.launch_func`` of one kernel with its launch rule (``args``: (ssa, type))."""
    rows_ssa, rows_type = args[c.launch["rows_arg"]][:2]
    rows = body.fresh("rows")
    body.lines.append(f"{rows} = memref.dim {rows_ssa}, {body.const(0)} : {rows_type}")
    grid, ws = rows, None
    if c.launch["grid"] == "blocks":          # a grid-wide amax: capped blocks, a workspace
        capped = body.fresh("blocks")
        body.lines.append(f"{capped} = arith.minui {rows}, "
                          f"{body.const(c.launch['max_blocks'])} : index")
        grid = body.fresh("blocks")
        body.lines.append(f"{grid} = arith.maxui {capped}, {body.const(1)} : index")
        ws_type = c.types[-1]
        ws = body.fresh("ws")
        body.lines.append(f"{ws} = memref.alloc() : {ws_type}")
        for i in range(ir.MemRefType(ws_type).shape[0]):
            body.lines.append(f"memref.store {body.const(0, 'i32')}, {ws}[{body.const(i)}] : "
                              f"{ws_type}")
        args = args + [(ws, ws_type)]
    one, block = body.const(1), body.const(c.launch["block"])
    operands = ", ".join(f"{s} : {t}" for s, t, *_ in args)
    body.lines.append(f"gpu.launch_func @{module}::@{callee} blocks in ({grid}, {one}, {one}) "
                      f"threads in ({block}, {one}, {one}) args({operands})")
    if ws is not None:
        body.lines.append(f"memref.dealloc {ws} : {c.types[-1]}")


def bufferize_pipeline(fn, callees: dict, gpu_module: Optional[str] = None) -> str:
    """The text of pipeline function ``fn`` on buffers (see the module docstring);
    ``callees``: ``{kernel name: Callee}``; ``gpu_module``: the ``gpu.module`` holding the
    kernels (None: the loop level, plain calls)."""
    name = _symbol(fn)
    block = fn.regions[0].blocks[0]
    ops = [op.operation for op in block.operations]
    first_type = {}
    for op in ops:
        if op.name == "func.call":
            for v, t in zip(op.operands, callees[_symbol(op, "callee")].types):
                first_type.setdefault(v, t)
    buf, args = {}, []           # ir.Value -> (ssa, type, value name)
    for i, (a, attrs) in enumerate(zip(block.arguments, fn.arg_attrs)):
        buf[a] = (f"%in{i}", first_type.get(a, a.type), attr_name(attrs))
        args.append(f"%in{i}: {buf[a][1]} {attrs}")
    ret = ops[-1]
    returned = set(ret.operands)
    body, outs = _Body(), []
    for op in ops[:-1]:
        if op.name != "func.call":
            raise UnsupportedError(f"pipeline {name} holds {op.name}: a pipeline whose kernels "
                                   f"are lowered holds only kernel calls (run qf-fuse first)",
                                   source_loc(op.location))
        callee = _symbol(op, "callee")
        c = callees[callee]
        ins = [buf[v] for v in op.operands]
        for j, r in enumerate(op.results):
            if j in c.in_place:
                buf[r] = ins[c.in_place[j]]
                continue
            ssa, t = f"%out{len(outs)}", c.types[c.n_params + j]
            kind = "qf.output" if r in returned else "qf.buffer"
            outs.append(f'{ssa}: {t} {{qf.name = "{c.result_names[j]}", {kind}}}')
            buf[r] = (ssa, t, c.result_names[j])
        call_args = ins + [buf[r] for r in op.results]
        if gpu_module is None or c.host:
            body.lines.append(f"func.call @{callee}({', '.join(a[0] for a in call_args)}) : "
                              f"({', '.join(str(a[1]) for a in call_args)}) -> ()")
        else:
            _launch(body, gpu_module, callee, call_args, c)
    pairs = []
    for attrs, v in zip(fn.res_attrs, ret.operands):
        if v not in buf:
            raise UnsupportedError(f"pipeline {name} returns {attr_name(attrs)}, which no "
                                   f"kernel computes (a constant): not lowered",
                                   source_loc(fn.location))
        pairs.append(f'["{attr_name(attrs)}", "{buf[v][2]}"]')
    return (f"func.func @{name}({', '.join(args + outs)}) attributes "
            f"{{qf.returns = [{', '.join(pairs)}]}} {{\n{body.text()}\n    return\n  }}")
