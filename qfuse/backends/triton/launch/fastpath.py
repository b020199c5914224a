"""Re-launching a kernel with new tensors of an already-checked signature, cheaply.

``TritonKernel.launch`` checks and binds everything on every call (dims from shapes,
output shapes, views, constexprs, grid, argument list), which costs hundreds of
microseconds of Python: more than the kernel itself at large M. A :class:`BoundLaunch`
is made once per input signature (shapes, strides, dtypes, device) and keeps the
argument list with the tensor and scalar slots marked; a call only swaps in the new
tensors and scalars and launches. The caller guarantees the signature is the same
(the executor keys its table on it), so nothing needs checking again.

After its first launch (through ``JITFunction``, which compiles or finds the binary and
returns the ``CompiledKernel``) a BoundLaunch calls the compiled kernel's launcher
directly (``triton_adapter.direct_launcher``: the call that ``JITFunction.run`` ends
with). That skips Triton's per-call argument specialisation and cache lookup (measured on
the H200 with triton 3.6: 19.5 us per launch through the jit, 7.8 us direct) and the
dtype views (the launcher only reads ``data_ptr()``; the binary was specialised on the
first launch's dtypes, which the signature fixes, and on 16-byte pointer alignment, which
the executor's key includes). Launch hooks (profilers) set in ``triton.knobs`` send every
call through the jit.
"""
from __future__ import annotations

from typing import Optional

import torch

from ....dialect.types import dtype as qdtype
from .. import triton_adapter as tri
from ..kernel import TritonConfig, eval_rule

__all__ = ["BoundLaunch", "bind_launch"]


def _direct(kernels: list):
    """The direct launchers of ``[(CompiledKernel, grid)]``, or None unless each has one."""
    launchers = [tri.direct_launcher(k, g) for k, g in kernels]
    return None if any(f is None for f in launchers) else launchers


class BoundLaunch:
    """Launches of one kernel for one signature; ``__call__(inputs, outputs)`` runs them."""

    __slots__ = ("runs", "args", "slots", "scalar_slots", "workspace", "ws_size", "opts",
                 "out_specs", "interpret", "direct", "device_index", "ws_pool")

    def __init__(self, runs, args, slots, scalar_slots, workspace, ws_size, opts, out_specs,
                 interpret=False):
        self.interpret = interpret
        self.runs, self.args, self.slots = runs, args, slots
        self.scalar_slots, self.workspace, self.ws_size = scalar_slots, workspace, ws_size
        self.opts, self.out_specs = opts, out_specs
        self.direct = None                  # [launch(stream, args)] per run
        self.device_index = None
        self.ws_pool = None                 # WorkspacePool (self-resetting kernels)

    def allocate(self, inputs: dict, device, skip=()) -> dict:
        """Fresh outputs of this signature's shapes (a scatter target starts as a copy of
        its input); ``skip``: outputs the caller supplies itself (a KV cache updated in
        place), which would otherwise start as a copy of the whole cache."""
        outs = {}
        for name, shape, strides, dt, init in self.out_specs:
            if name in skip:
                continue
            if init is None:
                # empty_strided: about half the Python cost of torch.empty(shape_tuple)
                outs[name] = torch.empty_strided(shape, strides, dtype=dt, device=device)
            else:                                              # "copy"
                outs[name] = inputs[init[1]].clone()
        return outs

    def _args(self, inputs: dict, outputs: dict, views: bool, stream=None) -> list:
        """The argument list with this call's tensors and scalars (and the zeroed workspace
        of ``stream``, see workspace.py); ``views``: tensors reinterpreted as the kernel's
        storage dtypes (the jit checks them; the launcher only reads ``data_ptr()``)."""
        args = list(self.args)
        for i, io, name, view in self.slots:
            t = inputs[name] if io == "input" else outputs[name]
            args[i] = t.view(view) if views and t.dtype != view else t
        for i, name, is_float in self.scalar_slots:
            v = inputs[name]
            args[i] = float(v) if is_float else int(v)
        if self.workspace:
            if self.ws_pool is None:
                from .workspace import WorkspacePool
                self.ws_pool = WorkspacePool(self.ws_size, args[self.slots[0][0]].device)
            ws = self.ws_pool.get(stream)
            for i in self.workspace:
                args[i] = ws
        return args

    def __call__(self, inputs: dict, outputs: dict) -> None:
        if self.direct is not None:
            return self._call_direct(inputs, outputs)
        stream = None
        if self.workspace and not self.interpret:
            stream = torch.cuda.current_stream(args_device(self, inputs, outputs)).cuda_stream
        args = self._args(inputs, outputs, views=True, stream=stream)
        if self.interpret:
            for fn, grid in self.runs:
                with tri.interpreting(fn) as k:
                    k[grid](*args)
            return
        kernels = [(tri.launch_jit(fn, grid, args, self.opts), grid) for fn, grid in self.runs]
        if all(k is not None for k, _ in kernels) and not tri.hooks_active():
            self.direct = _direct(kernels)
            self.device_index = tri.current_device()

    def _call_direct(self, inputs: dict, outputs: dict) -> None:
        device = tri.current_device()
        if device != self.device_index or tri.hooks_active():   # loaded elsewhere / hooks
            self.direct = None
            return self(inputs, outputs)
        stream = tri.current_stream(device)
        args = self._args(inputs, outputs, views=False, stream=stream)
        for launch in self.direct:
            launch(stream, args)


def args_device(launch: BoundLaunch, inputs: dict, outputs: dict) -> torch.device:
    """The device of a launch's first tensor argument."""
    _, io, name, _ = launch.slots[0]
    return (inputs if io == "input" else outputs)[name].device


def _contiguous(shape) -> tuple:
    """Row-major strides of ``shape``."""
    strides, step = [], 1
    for d in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(d), 1)
    return tuple(reversed(strides))


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
    out_specs = [(s.name, tuple(shapes[s.name]), _contiguous(shapes[s.name]),
                  qdtype(s.dtype).torch_dtype(), s.init)
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
