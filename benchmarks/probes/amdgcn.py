"""AMDGCN assembly as Triton's AMD backend prints it (``asm["amdgcn"]``), read as text: the
kernel's instructions with their source lines, basic blocks, loops, the register metadata,
and the hot path. No GPU and no ROCm tools are needed (``amd_hotpath.py`` uses it).

The hot path is the heaviest path from the entry to an ``s_endpgm`` through the control-flow
graph with its back edges removed, where a block weighs its instruction count times the
trip counts of the loops around it (``trips(loop)``: the loop body's executions per
program), and blocks the caller marks cold are left out (``cold(instr)``: qfuse marks each
rarely taken branch with a ``tl.debug_barrier()`` line). The heaviest path, not a guess at
the taken one, because on AMD a divergent ``if`` becomes an exec-masked region that a wave
runs whenever one lane needs it (``s_cbranch_execz`` skips it only when no lane does):
counting it is right for masked stores and tails, and for an ``if / else`` on a
program-wide condition it counts the dearer side unless that side is marked cold. Both
kernels of a comparison are walked by the same rule.
"""
from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ["Instr", "Kernel", "Block", "Loop", "HotPath", "parse", "blocks", "loops",
           "hot_path", "instr_class"]

_LABEL = re.compile(r"^([.\w$]+):")
_INSTR = re.compile(r"^\s+([a-z][a-z0-9_]*)\b\s*(.*?)\s*(?:;.*)?$")
_LOC = re.compile(r"^\s+\.loc\s+(\d+)\s+(\d+)")
_FILE = re.compile(r'^\s+\.file\s+(\d+)\s+"([^"]*)"(?:\s+"([^"]*)")?')
_FUNC = re.compile(r"^([A-Za-z_]\w*):")
_META = re.compile(r"^\s+\.(vgpr_count|sgpr_count|agpr_count|vgpr_spill_count|"
                   r"sgpr_spill_count|private_segment_fixed_size|group_segment_fixed_size|"
                   r"wavefront_size):\s+(\d+)")
_OCCUPANCY = re.compile(r"^; Occupancy: (\d+)")
_END = {"s_endpgm", "s_setpc_b64"}          # leave the kernel (setpc: a return)


@dataclass(frozen=True)
class Instr:
    op: str                                 # mnemonic, e.g. v_fma_f32
    text: str                               # mnemonic and operands
    file: str                               # source file of the last .loc ("" if none)
    line: int                               # its line (0: no line)


@dataclass
class Kernel:
    name: str
    instrs: list                            # [Instr] in program order
    labels: dict                            # label -> index of the next instruction
    meta: dict                              # vgpr_count, sgpr_count, ... (metadata YAML)

    def target(self, i: int) -> Optional[int]:
        """Index of the branch target of instruction ``i`` (None: not a direct branch)."""
        ins = self.instrs[i]
        if ins.op == "s_branch" or ins.op.startswith("s_cbranch_"):
            return self.labels[ins.text.split()[1].rstrip(",")]
        return None


@dataclass
class Block:
    start: int                              # first instruction
    end: int                                # one past the last
    succs: list = field(default_factory=list)


@dataclass(frozen=True)
class Loop:
    header: int                             # block id
    body: frozenset                         # block ids, header included
    file: str                               # source of the branch that closes the loop
    line: int


@dataclass
class HotPath:
    count: float                            # instructions along the path, weighted
    mix: collections.Counter                # class -> weighted count
    ops: collections.Counter                # mnemonic -> weighted count
    path: list                              # block ids in order
    loops: list                             # [(Loop, trips)] of the loops on the path


def parse(asm: str) -> Kernel:
    """The first kernel function of ``asm``: instructions, labels and metadata."""
    files, name, instrs, labels, meta = {}, None, [], {}, {}
    cur = ("", 0)
    inside = False
    for line in asm.splitlines():
        m = _FILE.match(line)
        if m:
            files[m.group(1)] = os.path.join(m.group(2), m.group(3)) if m.group(3) else m.group(2)
            continue
        m = _META.match(line)
        if m:
            meta.setdefault(m.group(1), int(m.group(2)))
            continue
        m = _OCCUPANCY.match(line)
        if m:
            meta.setdefault("occupancy", int(m.group(1)))
            continue
        if not inside:
            m = _FUNC.match(line)
            if m and name is None:
                name, inside = m.group(1), True
            continue
        if line.startswith(".Lfunc_end"):
            inside = False
            continue
        m = _LOC.match(line)
        if m:
            cur = (files.get(m.group(1), ""), int(m.group(2)))
            continue
        m = _LABEL.match(line)
        if m:
            labels[m.group(1)] = len(instrs)
            continue
        m = _INSTR.match(line)
        if m:
            text = (m.group(1) + " " + m.group(2)).strip()
            instrs.append(Instr(m.group(1), text, cur[0], cur[1]))
    if name is None:
        raise ValueError("no kernel function in this assembly")
    return Kernel(name, instrs, labels, meta)


def blocks(k: Kernel) -> list:
    """Basic blocks in program order; ``succs`` by block id (fall-through first)."""
    n = len(k.instrs)
    leaders = {0}
    for i, ins in enumerate(k.instrs):
        t = k.target(i)
        if t is not None:
            leaders.add(t)
        if t is not None or ins.op in _END:
            leaders.add(i + 1)
    starts = sorted(s for s in leaders if s < n)
    of = {}
    out = []
    for j, s in enumerate(starts):
        e = starts[j + 1] if j + 1 < len(starts) else n
        out.append(Block(s, e))
        for i in range(s, e):
            of[i] = j
    for j, b in enumerate(out):
        last = b.end - 1
        op, t = k.instrs[last].op, k.target(last)
        if op in _END:
            continue
        if op != "s_branch" and b.end < n:
            b.succs.append(of[b.end])
        if t is not None and t < n:
            b.succs.append(of[t])
    return out


def loops(k: Kernel, bl: list) -> list:
    """Natural loops (one per header, bodies of its back edges merged), from a depth-first
    search of the blocks reachable from the entry. A loop's source line is that of the
    branch closing it (the back edge's, else the last branch in its latch with a line)."""
    state, back, stack = {}, [], [(0, iter(bl[0].succs))] if bl else []
    state[0] = 1
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            state[node] = 2
            stack.pop()
        elif state.get(nxt) == 1:
            back.append((node, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(bl[nxt].succs)))
    preds = collections.defaultdict(set)
    for j, b in enumerate(bl):
        for s in b.succs:
            preds[s].add(j)
    bodies = collections.defaultdict(set)
    latch = {}
    for u, h in back:
        # the header is never walked from: a self-loop's body is the header alone
        body, work = {h, u}, ([u] if u != h else [])
        while work:
            x = work.pop()
            for p in preds[x]:
                if p not in body:
                    body.add(p)
                    work.append(p)
        bodies[h] |= body
        latch.setdefault(h, u)
    out = []
    for h, body in sorted(bodies.items()):
        b = bl[latch[h]]
        where = next(((k.instrs[i].file, k.instrs[i].line) for i in range(b.end - 1, b.start - 1, -1)
                      if k.instrs[i].line and (k.target(i) is not None or i == b.end - 1)),
                     ("", 0))
        out.append(Loop(h, frozenset(body), *where))
    return out


def instr_class(op: str) -> str:
    """valu, salu, smem (scalar loads), vmem (global/buffer/flat), lds, wait (s_waitcnt,
    s_nop), sync (barriers), branch."""
    if op.startswith("v_"):
        return "valu"
    if op.startswith(("global_", "buffer_", "flat_", "scratch_")):
        return "vmem"
    if op.startswith("ds_"):
        return "lds"
    if op.startswith(("s_load", "s_buffer_load", "s_store", "s_dcache")):
        return "smem"
    if op.startswith(("s_waitcnt", "s_nop", "s_sleep")):
        return "wait"
    if op.startswith("s_barrier"):
        return "sync"
    if op.startswith(("s_branch", "s_cbranch")) or op in _END:
        return "branch"
    return "salu"


def hot_path(k: Kernel, trips: Callable = lambda loop: 1.0,
             cold: Callable = lambda ins: False) -> HotPath:
    """The heaviest entry-to-exit path (see the module docstring). ``trips(loop)``: body
    executions per program (1 by default); ``cold(instr)``: leave its block out."""
    bl = blocks(k)
    lps = loops(k, bl)
    back = {(u, lp.header) for lp in lps for u in lp.body if lp.header in bl[u].succs}
    weight = {lp: float(trips(lp)) for lp in lps}
    mult = [1.0] * len(bl)
    for lp, w in weight.items():
        for j in lp.body:
            mult[j] *= w
    blocked = {j for j, b in enumerate(bl) if any(cold(k.instrs[i]) for i in range(b.start, b.end))}
    best, nxt = {}, {}
    order, seen = [], set()

    def visit(root):                        # post-order over the DAG, without recursion
        work = [(root, iter(bl[root].succs))]
        seen.add(root)
        while work:
            node, it = work[-1]
            s = next(it, None)
            if s is None:
                order.append(node)
                work.pop()
            elif (node, s) not in back and s not in seen:
                seen.add(s)
                work.append((s, iter(bl[s].succs)))
    if bl:
        visit(0)
    for j in order:                          # successors come first in post-order
        if j in blocked:
            continue
        w = (bl[j].end - bl[j].start) * mult[j]
        tails = [(best[s], s) for s in bl[j].succs if (j, s) not in back and s in best]
        exits = k.instrs[bl[j].end - 1].op in _END
        if tails:
            top = max(tails)
            best[j], nxt[j] = w + top[0], top[1]
        elif exits:
            best[j] = w
    if 0 not in best:
        raise ValueError(f"{k.name}: no path from the entry to s_endpgm avoids the cold blocks")
    path, j = [0], 0
    while j in nxt:
        j = nxt[j]
        path.append(j)
    mix, ops = collections.Counter(), collections.Counter()
    for j in path:
        for i in range(bl[j].start, bl[j].end):
            op = k.instrs[i].op
            mix[instr_class(op)] += mult[j]
            ops[op] += mult[j]
    on = set(path)
    return HotPath(best[0], mix, ops, path,
                   [(lp, weight[lp]) for lp in lps if lp.header in on])
