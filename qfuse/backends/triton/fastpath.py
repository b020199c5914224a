"""Re-launching a kernel with new tensors of an already-checked signature, cheaply.

``TritonKernel.launch`` checks and binds everything on every call (dims from shapes,
output shapes, views, constexprs, grid, argument list), which costs hundreds of
microseconds of Python: more than the kernel itself at large M. A :class:`BoundLaunch`
is made once per input signature (shapes, strides, dtypes, device) and keeps the
argument list with the tensor and scalar slots marked; a call only swaps in the new
tensors and scalars and launches. The caller guarantees the signature is the same
(the executor keys its table on it), so nothing needs checking again.
"""
from __future__ import annotations

from typing import Optional

import torch

from ...dialect.types import dtype as qdtype
from .kernel import TritonConfig, eval_rule

__all__ = ["BoundLaunch", "bind_launch"]


class BoundLaunch:
    """Launches of one kernel for one signature; ``__call__(inputs, outputs)`` runs them."""

    __slots__ = ("runs", "args", "slots", "scalar_slots", "workspace", "ws_size", "opts",
                 "out_specs", "interpret")

    def __init__(self, runs, args, slots, scalar_slots, workspace, ws_size, opts, out_specs,
                 interpret=False):
        self.interpret = interpret
        self.runs, self.args, self.slots = runs, args, slots
        self.scalar_slots, self.workspace, self.ws_size = scalar_slots, workspace, ws_size
        self.opts, self.out_specs = opts, out_specs

    def allocate(self, inputs: dict, device) -> dict:
        """Fresh outputs of this signature's shapes (filled where the kernel expects it)."""
        outs = {}
        for name, shape, dt, init in self.out_specs:
            if init is not None and init[0] == "fill":
                outs[name] = torch.full(shape, int(init[1]), dtype=torch.uint8,
                                        device=device).view(dt)
            elif init is not None and init[0] == "copy":
                outs[name] = inputs[init[1]].clone()
            else:
                outs[name] = torch.empty(shape, dtype=dt, device=device)
        return outs

    def __call__(self, inputs: dict, outputs: dict) -> None:
        args = list(self.args)
        for i, io, name, view in self.slots:
            t = inputs[name] if io == "input" else outputs[name]
            args[i] = t if t.dtype == view else t.view(view)
        for i, name, is_float in self.scalar_slots:
            v = inputs[name]
            args[i] = float(v) if is_float else int(v)
        for i in self.workspace:
            args[i] = torch.zeros(self.ws_size, dtype=torch.int32, device=args[self.slots[0][0]].device)
        if self.interpret:
            from .loader import interpreting
            for fn, grid in self.runs:
                with interpreting(fn) as k:
                    k[grid](*args)
            return
        for fn, grid in self.runs:
            fn[grid](*args, **self.opts)


def bind_launch(kern, inputs: dict, outputs: dict, dims: dict,
                config: Optional[TritonConfig] = None, interpret: bool = False
                ) -> Optional[BoundLaunch]:
    """A BoundLaunch for ``kern`` (a TritonKernel) at the signature of ``inputs`` and
    ``outputs`` (the tensors of a first, fully checked launch)."""
    src, cfg = kern.source, config or TritonConfig()
    cexpr = kern._constexprs(cfg, dims, interpret)
    runs = kern.runs(dims, cexpr)
    if not runs:
        return None
    shapes = kern.output_shapes(dims)
    out_specs = [(s.name, shapes[s.name], qdtype(s.dtype).torch_dtype(), s.init)
                 for s in src.tensors if s.role == "output"]
    scalars = {s.name: s for s in src.scalars}
    args, slots, scalar_slots, workspace = [], [], [], []
    ws_size = 0
    for i, a in enumerate(src.args):
        if a.role in ("input", "output"):
            slots.append((i, a.role, a.ref, getattr(torch, src.tensor(a.ref, a.role).view)))
            args.append(None)
        elif a.role == "workspace":
            workspace.append(i)
            ws_size = eval_rule(src.workspace, dims)
            args.append(None)
        elif a.role == "dim":
            args.append(int(dims[a.ref]))
        elif a.role == "stride":
            t = inputs[a.ref] if a.io == "input" else outputs[a.ref]
            args.append(int(t.stride(a.dim)))
        elif a.role == "scalar":
            scalar_slots.append((i, a.ref, scalars[a.ref].dtype in ("f32", "bf16", "f16")))
            args.append(None)
        else:
            args.append(cexpr[a.ref])
    opts = {"num_warps": cexpr["_warps"], "num_stages": cfg.num_stages, "enable_fp_fusion": False}
    return BoundLaunch(runs, args, slots, scalar_slots, workspace, ws_size, opts, out_specs,
                       interpret)
