"""The one-shot all-reduce kernel: one generated Triton kernel per rank that reads every
peer's rows through a table of peer pointers, sums them in rank order, and runs the
pipeline's norm + quantisation on the sum, all in registers.

It is generated from the pipeline's own compiled form: a pipeline ``all_reduce(x) ->
row kernel`` compiles (``qf-fuse``, rule 7 of ``qfuse.passes.plan``) to a collective step
and one row kernel that reads the reduced tensor. :func:`plan_oneshot` takes that row
kernel's :class:`~qfuse.backends.triton.kernel.KernelSource` and replaces each load of
the reduced tensor, ``tl.load(red_ptr + OFF, mask=MASK, other=0)`` (with its widening to
fp32), by ``qfd_peer_sum(qfd_peers_ptr, QFD_WORLD, OFF, MASK, KIND)`` (``device.py``:
the fp32 sum ``((x_0 + x_1) + ...) + x_{W-1}`` of the peers' elements at the same
offset), rounded to the all-reduce's result dtype as the collective does
(``qfuse.backends.collective.ordered_sum``). Everything after the load is the row
kernel's text unchanged, so the one-shot kernel gives the bits of the two-step path's
kernel on the rank-order sum: bit-identical to the Triton two-step path, and on every
rank (every rank adds the same operands in the same order).

The kernel takes two more arguments than the row kernel, first and last: ``qfd_peers``
(int64 [W]: peer r's buffer address) and the constexpr ``QFD_WORLD`` (W, from the table's
length). The reduced tensor's own argument is bound to this rank's buffer: the kernel
reads its row stride there (every peer's buffer has the same layout) and nothing else.

Limits (refused with the reason): the pipeline must compile to exactly [collective, row
kernel] on the Triton backend; the all-reduce's order must be ``rank`` (``native`` is the
collective's order); the reduced tensor must not be a pipeline result (the kernel keeps
it in registers); its input must be a bf16 / f16 / f32 pipeline parameter.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from ..backends.triton.codegen.emit import STORAGE
from ..backends.triton.kernel import KernelArg, KernelSource, TensorSpec
from ..backends.triton.launch import TritonKernel
from ..dialect.options import ReduceOrder
from ..errors import UnsupportedError

__all__ = ["PEERS", "WORLD", "OneShotPlan", "OneShotKernel", "plan_oneshot", "peer_table"]

PEERS = "qfd_peers"          # the pointer table: an input tensor int64 [QFD_WORLD]
WORLD = "QFD_WORLD"          # its length, a constexpr
_KIND = {"bf16": 0, "f16": 1, "f32": 2}
_ROUND = {"bf16": "qf_round_bf16", "f16": "qf_round_f16", "f32": ""}
_IMPORTS = ("from qfuse.distributed.device import qfd_peer_sum\n"
            "from qfuse.backends.triton.numerics import qf_round_bf16, qf_round_f16\n")


@dataclass(frozen=True)
class OneShotPlan:
    """What :class:`OneShotKernel` launches: the generated source and the names it binds."""
    source: KernelSource
    x: str                   # the pipeline parameter the all-reduce sums (each peer's buffer)
    reduced: str             # the all-reduce's result (the row kernel's former input)
    peer_dtype: str          # x's dtype (qfuse name)
    group: str               # the pipeline's group name
    returns: tuple           # (return name, value name), the pipeline's return order
    defaults: tuple = ()     # (parameter, value): the pipeline's scalar defaults (eps)


def _refuse(why: str) -> UnsupportedError:
    return UnsupportedError(f"one-shot all-reduce: {why}")


def plan_oneshot(cp) -> OneShotPlan:
    """The one-shot kernel of compiled pipeline ``cp`` (a Triton CompiledPipeline), or
    UnsupportedError naming what stands in the way (see the module docstring)."""
    steps = cp.steps
    if cp.backend != "triton":
        raise _refuse(f"needs the triton backend, {cp.name} is compiled for {cp.backend}")
    if [s.space for s in steps] != ["collective", "row"]:
        raise _refuse(f"{cp.name} compiles to steps {[s.space for s in steps]}; the one-shot "
                      f"path fuses one all_reduce followed by one row kernel")
    coll, row = steps
    (call,) = coll.program.calls
    if call.options["order"] != ReduceOrder.RANK:
        raise _refuse(f"all_reduce(order={call.options['order']}) sums in the collective's "
                      f"order; the one-shot kernel sums in rank order (order=rank)")
    (x,), (reduced,) = coll.inputs, coll.outputs
    if reduced in {v for _, v in cp.returns}:
        raise _refuse(f"the reduced tensor {reduced} is a result of {cp.name}; the one-shot "
                      f"kernel keeps it in registers")
    peer_dtype = coll.program.params[0].value.type.dtype.name
    src = row.source
    spec = src.tensor(reduced)
    if peer_dtype not in _KIND or spec.dtype not in _KIND:
        raise _refuse(f"sums bf16 / f16 / f32 tensors, got {peer_dtype} -> {spec.dtype}")
    text, n = _rewrite_loads(src.text, f"{reduced}_ptr", peer_dtype, spec.dtype)
    if n == 0:
        raise _refuse(f"kernel {src.name} has no load of {reduced} to replace")
    name = f"{src.name}__oneshot"
    text = _signature(text.replace(f"def {src.name}(", f"def {name}("), name)
    text = text.replace("\n\n\n@triton.jit", "\n" + _IMPORTS + "\n\n@triton.jit", 1)
    view = STORAGE[peer_dtype][0]
    tensors = tuple(dataclasses.replace(t, dtype=peer_dtype, view=view)
                    if t.name == reduced and t.role == "input" else t for t in src.tensors)
    args = tuple(dataclasses.replace(a, sig=STORAGE[peer_dtype][1]) if a.ref == reduced
                 and a.role == "input" else a for a in src.args)
    source = dataclasses.replace(
        src, name=name, text=text, phases=(),
        args=(KernelArg(f"{PEERS}_ptr", "input", PEERS, sig="*i64"),) + args
        + (KernelArg(WORLD, "constexpr", WORLD),),
        tensors=(TensorSpec(PEERS, "input", "i64", (WORLD,), "int64"),) + tensors,
        constexprs=src.constexprs + ((WORLD, WORLD),))
    if src.phases:
        raise _refuse(f"kernel {src.name} launches in phases")
    defaults = tuple((q.value.name, q.default) for q in cp.program.params
                     if q.default is not None)
    return OneShotPlan(source, x, reduced, peer_dtype, call.options["group"],
                       tuple(cp.returns), defaults)


def _call_end(text: str, start: int) -> int:
    """The index just after the parenthesis that closes the one opened at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise _refuse("unbalanced parentheses in the generated kernel")


def _split_load(inner: str, ptr: str) -> tuple:
    """``(offset, mask)`` of the argument text of ``tl.load(ptr + OFF, mask=M, other=0)``."""
    body, _, rest = inner.partition(", mask=")
    mask, _, other = rest.rpartition(", other=")
    if not body.startswith(f"{ptr} + ") or not rest or other != "0":
        raise _refuse(f"unexpected load of {ptr}: tl.load({inner})")
    return body[len(ptr) + 3:], mask


def _rewrite_loads(text: str, ptr: str, peer: str, result: str) -> tuple:
    """``text`` with every fp32-widened load through ``ptr`` replaced by the rank-order
    peer sum rounded to ``result``; and how many were replaced."""
    widen = {"bf16": ("qft_bf16_to_f32(", ")"), "f16": ("", ".to(tl.float32)"),
             "f32": ("", "")}[result]
    out, pos, n = [], 0, 0
    needle = f"tl.load({ptr} + "
    while True:
        i = text.find(needle, pos)
        if i < 0:
            break
        end = _call_end(text, i + len("tl.load"))
        off, mask = _split_load(text[i + len("tl.load("):end - 1], ptr)
        start = i - len(widen[0])
        if text[start:i] != widen[0] or not text.startswith(widen[1], end):
            raise _refuse(f"a load of {ptr} is not widened to fp32 as expected")
        total = f"qfd_peer_sum({PEERS}_ptr, {WORLD}, {off}, {mask}, {_KIND[peer]})"
        rnd = _ROUND[result]
        out.append(text[pos:start])
        out.append(f"{rnd}({total})" if rnd else total)
        pos, n = end + len(widen[1]), n + 1
    out.append(text[pos:])
    return "".join(out), n


def _signature(text: str, name: str) -> str:
    """Add the peer table first and the world size last to ``name``'s parameter list."""
    head = f"def {name}(\n"
    i = text.index(head) + len(head)
    text = text[:i] + f"    {PEERS}_ptr,\n" + text[i:]
    j = text.index("\n):\n", i)
    return text[:j] + f"\n    {WORLD}: tl.constexpr," + text[j:]


def peer_table(buffers: list, device=None) -> torch.Tensor:
    """int64 [W]: the base address of each rank's buffer, in rank order (the simulated
    peers of the tests; symmetric memory gives its own, ``symm.py``)."""
    return torch.tensor([b.data_ptr() for b in buffers], dtype=torch.int64,
                        device=device if device is not None else buffers[0].device)


class OneShotKernel:
    """Launches the one-shot kernel of one pipeline on one rank."""

    def __init__(self, plan: OneShotPlan):
        self.plan = plan
        self.kernel = TritonKernel(plan.source)

    def __call__(self, table: torch.Tensor, local: torch.Tensor, inputs: dict,
                 config=None, interpret: Optional[bool] = None) -> dict:
        """Run it: ``table`` the peer pointers (int64 [W]), ``local`` this rank's buffer
        (the peers' layout: contiguous [M, N] of x's dtype; its values are not read here,
        its entry in the table is), ``inputs`` the pipeline's other inputs by parameter
        name. Returns the pipeline's results by return name. The table's addresses are
        trusted, not checked: each must hold at least this rank's ``M`` rows at its
        stride (build it with :func:`peer_table` or ``symm.SymmetricBuffer``)."""
        p = self.plan
        if table.dtype != torch.int64 or table.dim() != 1 or table.numel() < 1:
            raise _refuse(f"the peer table must be a non-empty int64 vector, got "
                          f"{table.dtype} of shape {tuple(table.shape)}")
        if not local.is_contiguous():
            raise _refuse("this rank's buffer must be contiguous (the peers' layout)")
        ins = {**dict(p.defaults), **{k: v for k, v in inputs.items() if k != p.x}}
        ins[p.reduced] = local
        ins[PEERS] = table
        dims = self.kernel.bind_dims(ins)
        outs = self.kernel.allocate_outputs(ins, dims)
        self.kernel.launch(ins, outs, dims, config, interpret)
        made = {v: outs[t] for t, v in p.source.outputs}
        return {ret: made[v] if v in made else inputs[v] for ret, v in p.returns}
