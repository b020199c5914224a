"""Kernel planning: which stages of a pipeline share one kernel, and why boundaries exist.

Fusion is about bytes: a pipeline should read each input once and write each output
once. The rule, applied to the ``qf`` ops of a pipeline ``func.func`` in program order
(each op's iteration space is the catalog's answer,
:func:`qfuse.dialect.stages.iteration_space`; its row domain comes from the symbolic
types the reader gives its values, :func:`qfuse.dialect.reader.value_info`):

1. **Row space.** Most stages work row by row over the last dim (norm, smooth, scale
   per_token / per_1xK / mx, round, pack, glue, cache_write without per-block scales).
   A stage joins the kernel of its producers when the kernel is in row space and its
   row domain (the leading dims it iterates over) is the same. Values stay in registers
   between stages; nothing in between touches memory.
2. **Remapped rows.** ``gather`` and the expert-indexed ``smooth`` read their input rows
   through an index. They may join a kernel only when that input comes from memory (a
   pipeline input or an earlier kernel's output); an in-kernel value would need another
   program's registers, so the producer's kernel ends there (reason ``remapped-rows``).
3. **Grid-wide amax.** A dynamic ``per_tensor`` scale needs the amax of the whole tensor
   before any element can be quantised. It gets its own kernel (space ``tensor_amax``)
   that *recomputes* the scale's input from the pipeline inputs (the chain is duplicated:
   reading x twice is cheaper than writing and re-reading an intermediate), and the
   quantisation continues in the row kernel (reason ``grid-wide-amax``). The plan keeps
   the two kernels whatever the shape; where the whole tensor fits one program (a
   shape known only at bind time), the Triton launcher runs the amax kernel and the row
   kernel after it as one launch of one program, bit for bit the same
   (``qfuse/backends/triton/launch/one_launch.py``, ``ONE_PROGRAM_MAX_ELEMENTS``: the
   next kernel, when it is a row kernel reading the scale).
4. **Tiles.** ``per_128x128`` scales work on 128x128 tiles (space ``tile``); the tile
   kernel reads its input from memory, so a row-space producer is materialised (reason
   ``tile-space``).
5. **Cache blocks.** ``cache_write`` with ``quant=per_block`` needs the amax over all new
   tokens of a cache block (space ``cache_block``, reason ``per-block-scale``).
6. ``shuffle`` is a store layout: it joins the kernel of the mx scale it permutes when
   that scale is computed in the pipeline; a scale given as a parameter is laid out by a
   row kernel over its own rows (AITER's ``e8m0_shuffle`` of a stored scale).
7. **Collectives.** ``all_reduce`` is a host step between kernels (space
   ``collective``: a torch.distributed collective, or the one-shot path of
   :mod:`qfuse.distributed`): it is a step of its own (reason ``collective``), its input
   comes from memory, and the stages after it start a new row kernel that reads the
   reduced tensor (reason ``after-collective``).

Kernels are emitted in dependency order. A value is a kernel output when the pipeline
returns it or a stage of another kernel reads it. The plan names ops and SSA values;
``qf-fuse`` (:mod:`qfuse.passes.fuse`) outlines it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Optional

from ..dialect.mlir import ir
from ..dialect.stages import STAGES, call_space, layout_operand, remapped_operand

__all__ = ["KernelPlan", "StageOp", "plan_kernels", "stage_ops", "row_domain", "kernel_name"]



@dataclass(eq=False)
class StageOp:
    """One ``qf`` op as the planner reads it (operands, options and results decoded once)."""
    op: object                      # the ir.Operation
    stage: str                      # catalog name
    operands: dict                  # operand name -> ir.Value | None (catalog order)
    options: dict                   # option name -> value
    results: list                   # present results (ir.Values), catalog order

    @property
    def space(self) -> str:
        """The iteration space this stage needs on its own (the catalog's answer)."""
        return call_space(self)


def stage_ops(block) -> list:
    """The ``qf`` ops of ``block`` in program order, as :class:`StageOp` s."""
    from ..dialect.ops import op_operands, op_options, op_results, stage_of
    out = []
    for op in block.operations:
        st = stage_of(op)
        if st is not None:
            out.append(StageOp(op.operation, st.name, op_operands(op), op_options(op),
                               [r for r in op_results(op).values() if r is not None]))
    return out


@dataclass
class KernelPlan:
    name: str
    space: str                      # "row" | "tensor_amax" | "tile" | "cache_block"
    calls: list = field(default_factory=list)      # StageOps, in kernel order
    reason: str = ""                # why this kernel starts a new boundary ("" = first)
    inputs: list = field(default_factory=list)    # ir.Values read from outside
    outputs: list = field(default_factory=list)   # ir.Values needed outside
    owned: set = field(default_factory=set)       # ids of the StageOps it computes
    # (the others in ``calls`` are copies recomputed for a grid-wide amax)

    def describe(self) -> str:
        stages = " -> ".join(c.stage for c in self.calls)
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.name} [{self.space}]: {stages}{why}"


def kernel_name(pipeline: str, index: int) -> str:
    """The symbol of a pipeline's ``index``-th kernel: ``<pipeline>__k<index>``.

    Pipeline names cannot contain ``__`` (``qfuse.dsl.limits.check_identifier``), so a
    kernel name is never a pipeline name and two pipelines never share a kernel name:
    the text before the last ``__k`` gives the pipeline back. (The tuning tables key on
    these names, so the spelling is kept.)
    """
    return f"{pipeline}__k{index}"


def row_domain(call: StageOp, info: dict) -> tuple:
    """Leading dims a row-space stage iterates over (one program row per entry): those of
    its rows tensor (``Stage.rows``: an operand, x for scale, round and cache_write and s
    for shuffle, else the result). ``info``: the symbolic type of each value
    (:func:`qfuse.dialect.reader.value_info`)."""
    rows = STAGES[call.stage].rows
    if rows in call.operands or not call.results:
        v = call.operands.get(rows)
        return tuple(info[v].type.shape[:-1]) if v is not None else ()
    return tuple(info[call.results[0]].type.shape[:-1])


class _Planner:
    def __init__(self, name: str, calls: list, returns: list, info: dict):
        self.name, self.calls, self.returns, self.info = name, calls, returns, info
        self.producer: dict = {}          # ir.Value -> StageOp
        self.kernel_of: dict = {}         # id(StageOp) -> KernelPlan
        self.kernels: list = []
        self.domains: dict = {}           # id(KernelPlan) -> row domains of its stages
        for call in calls:
            for r in call.results:
                self.producer[r] = call

    def new_kernel(self, space: str, reason: str) -> KernelPlan:
        k = KernelPlan(kernel_name(self.name, len(self.kernels)), space, reason=reason)
        self.kernels.append(k)
        return k

    def add(self, k: KernelPlan, call: StageOp, note: bool = True) -> None:
        k.calls.append(call)
        self.kernel_of.setdefault(id(call), k)
        if note:
            self.note_domain(k, call)

    def row_domain(self, call: StageOp) -> tuple:
        return row_domain(call, self.info)

    def note_domain(self, k: KernelPlan, call: StageOp) -> None:
        """Keep each kernel's set of row domains, so checking one is O(1), not O(calls)."""
        self.domains.setdefault(id(k), set()).add(self.row_domain(call))

    def rows_over(self, k: KernelPlan, dom: tuple) -> bool:
        """A row kernel whose stages all iterate over the rows ``dom``."""
        return k.space == "row" and self.domains.get(id(k), set()) <= {dom}

    def chain(self, value, k: KernelPlan) -> list:
        """Calls of kernel ``k`` that ``value`` depends on, in program order."""
        need, stack = set(), [value]
        while stack:
            v = stack.pop()
            call = self.producer.get(v)
            if call is None or self.kernel_of.get(id(call)) is not k or id(call) in need:
                continue
            need.add(id(call))
            stack.extend(o for o in call.operands.values() if o is not None)
        return [c for c in k.calls if id(c) in need]

    def producer_kernels(self, call: StageOp, skip: Optional[str] = None) -> list:
        ks = []
        for name, v in call.operands.items():
            if v is None or name == skip:
                continue
            p = self.producer.get(v)
            if p is not None:
                k = self.kernel_of[id(p)]
                if k not in ks:
                    ks.append(k)
        return ks

    def place(self, call: StageOp) -> None:
        space = call.space
        maker = self._layout_maker(call)
        if maker is not None:       # a store layout of its maker's result: its rows are the maker's
            self.add(maker, call, note=False)
            return
        if space == "collective":
            self.add(self.new_kernel(space, "collective: all_reduce is a host step between "
                                            "kernels; the next kernel reads its result"), call)
            return
        if space == "tensor_amax":
            k = self.new_kernel(space, "grid-wide-amax: a dynamic per_tensor scale needs the "
                                       "amax of the whole tensor before quantising")
            x = call.operands["x"]
            px = self.producer.get(x)
            if px is not None and self.kernel_of[id(px)].space != "collective":
                # (a host step's result is read from memory, never recomputed)
                for c in self.chain(x, self.kernel_of[id(px)]):
                    k.calls.append(c)         # recomputed, not materialised
                    self.note_domain(k, c)
            self.add(k, call)
            return
        if space in ("tile", "cache_block"):
            ks = [k for k in self.producer_kernels(call) if k.space == space
                  and self.row_domain(k.calls[-1]) == self.row_domain(call)]
            if ks:
                self.add(ks[0], call)
                return
            why = ("tile-space: 128x128 scales quantise tiles, so their input comes from memory"
                   if space == "tile" else
                   "per-block-scale: a cache block's scale needs all of its new tokens")
            self.add(self.new_kernel(space, why), call)
            return
        present = {n for n, v in call.operands.items() if v is not None}
        remap = remapped_operand(call.stage, present)
        if remap and self.producer.get(call.operands[remap]) is not None:
            # the remapped input would live in another program's registers
            self.add(self.new_kernel("row", f"remapped-rows: {call.stage} reads rows of "
                                            f"{self.info[call.operands[remap]].name} through an "
                                            f"index"), call)
            return
        dom = self.row_domain(call)
        ks = self.producer_kernels(call)
        rows = [k for k in ks if self.rows_over(k, dom)]
        if len(rows) == 1 and len(ks) == 1:
            self.add(rows[0], call)
            return
        if rows and len(rows) == len([k for k in ks if k.space == "row"]):
            target = rows[0]
            # a later row kernel may itself read a non-row kernel: only merge independent ones
            for other in rows[1:]:
                self.merge(other, target)
            self.add(target, call)
            return
        if not ks:
            # horizontal fusion: a stage reading only pipeline inputs joins a row kernel
            # over the same rows (one launch for K and V, gate and up, ...)
            for k in self.kernels:
                if self.rows_over(k, dom):
                    self.add(k, call)
                    return
        other = [k for k in ks if k.space != "row"]
        if other:
            reason = (f"after-{other[0].space}: reads the result of a {other[0].space} kernel")
        elif ks:
            reason = "new-rows: the row domain changes"
        else:
            reason = ""
        self.add(self.new_kernel("row", reason), call)

    def _layout_maker(self, call: StageOp) -> Optional[KernelPlan]:
        """The kernel of the stage whose result ``call`` lays out (shuffle of a scale
        computed in this pipeline), or None (not a layout stage, or its operand comes
        from elsewhere: then it is placed like any row stage over the operand's rows)."""
        spec = layout_operand(call.stage)
        if spec is None:
            return None
        maker = self.producer.get(call.operands[spec.name])
        if maker is None or maker.stage != spec.made_by:
            return None
        return self.kernel_of[id(maker)]

    def merge(self, src: KernelPlan, dst: KernelPlan) -> None:
        for c in src.calls:
            dst.calls.append(c)
            self.kernel_of[id(c)] = dst
            self.note_domain(dst, c)
        order = {id(c): i for i, c in enumerate(self.calls)}
        dst.calls.sort(key=lambda c: order[id(c)])
        self.kernels.remove(src)

    def finish(self) -> list:
        """Inputs and outputs of every kernel, output-less kernels dropped, dependency
        order and final names. Linear in the stages (sets, not rescans)."""
        inside = {id(k): {r for c in k.calls for r in c.results} for k in self.kernels}
        readers = self._outside_readers(inside)
        returned = set(self.returns)
        for k in self.kernels:
            k.inputs = self._inputs(k, inside[id(k)])
            k.outputs = self._outputs(k, returned, readers)
        # a kernel whose results are all recomputed elsewhere (the chain a grid-wide amax
        # copied, read by nothing else) computes nothing anyone reads
        self.kernels = [k for k in self.kernels if k.outputs]
        for i, k in enumerate(self._topo(inside)):
            k.name = kernel_name(self.name, i)
            k.owned = {id(c) for c in k.calls if self.kernel_of[id(c)] is k}
        return self.kernels

    def _outside_readers(self, inside: dict) -> dict:
        """``{value: ids of the kernels that read it from outside themselves}``."""
        readers: dict = {}
        for k in self.kernels:
            for c in k.calls:
                for v in c.operands.values():
                    if v is not None and v not in inside[id(k)]:
                        readers.setdefault(v, set()).add(id(k))
        return readers

    def _inputs(self, k: KernelPlan, inside: set) -> list:
        ins, seen = [], set()
        for c in k.calls:
            for v in c.operands.values():
                if v is not None and v not in inside and not _is_constant(v) \
                        and v not in seen:
                    seen.add(v)
                    ins.append(v)
        return ins

    def _outputs(self, k: KernelPlan, returned: set, readers: dict) -> list:
        if k.space == "tensor_amax":
            return [k.calls[-1].results[0]]
        outs = []
        for c in k.calls:
            if self.kernel_of[id(c)] is not k:
                continue                      # recomputed copy: its results live elsewhere
            for r in c.results:
                if r in returned or readers.get(r, set()) - {id(k)}:
                    outs.append(r)
        return outs

    def _topo(self, inside: dict) -> list:
        """Kernels in dependency order, ties in planning order (Kahn's algorithm)."""
        index = {id(k): i for i, k in enumerate(self.kernels)}
        users: dict = {i: set() for i in index.values()}
        waiting = {}
        for k in self.kernels:
            deps = set()
            for v in k.inputs:
                p = self.producer.get(v)
                if p is not None and v not in inside[id(k)]:
                    deps.add(index[id(self.kernel_of[id(p)])])
            waiting[index[id(k)]] = len(deps)
            for d in deps:
                users[d].add(index[id(k)])
        ready = [i for i, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(self.kernels[i])
            for u in users[i]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) < len(self.kernels):
            raise AssertionError("kernel plan has a cycle")
        self.kernels = order
        return order


def _is_constant(value) -> bool:
    """A literal (``arith.constant``): each kernel that reads one holds its own copy."""
    return isinstance(value, ir.OpResult) and value.owner.operation.name == "arith.constant"


def plan_kernels(fn, info: Optional[dict] = None) -> list:
    """Split the pipeline ``func.func`` ``fn`` into kernels (see the module docstring for
    the rule). ``info``: :func:`qfuse.dialect.reader.value_info` of ``fn`` (read when
    None)."""
    if info is None:
        from ..dialect.reader import value_info
        info = value_info(fn)
    block = fn.regions[0].blocks[0]
    name = ir.StringAttr(fn.attributes["sym_name"]).value
    ret = block.operations[len(block.operations) - 1]
    planner = _Planner(name, stage_ops(block), list(ret.operands), info)
    for call in planner.calls:
        planner.place(call)
    return planner.finish()
