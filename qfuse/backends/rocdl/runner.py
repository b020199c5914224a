"""``RocdlRunner``: runs a compiled pipeline's ROCDL kernels on torch tensors.

Each call binds the pipeline's symbols from its inputs, allocates every kernel's outputs
from the kernel's declared types (an output updated in place, a KV cache, is its
parameter's tensor), and calls the kernel in its ABI order (parameters,
then outputs). Where it runs follows the tensors: CPU tensors go to the CPU twin
(:mod:`.cpu`), CUDA tensors to the NVVM twin and AMD tensors to the HIP launcher
(:mod:`.launch`): everything but that last call is shared. A host step (``all_reduce``:
no RocdlKernel) runs between the kernels with the stage's host implementation, the one
the reference backend interprets (:func:`qfuse.backends.reference.interpreter.run_host_step`).
"""
from __future__ import annotations

from typing import Optional

import torch

from ...dialect.in_place import updated_params
from ...dialect.types import TensorType

__all__ = ["RocdlRunner", "bind_symbols", "output_shape"]


def bind_symbols(program, tensors: dict) -> dict:
    """``{symbol: size}`` from the kernel parameters' declared dims and the tensors."""
    syms: dict = {}
    for p in program.params:
        t, v = p.value.type, tensors.get(p.value.name)
        if isinstance(t, TensorType) and isinstance(v, torch.Tensor):
            for d, n in zip(t.shape, v.shape):
                if d.is_symbol:
                    syms.setdefault(d.value, n)
    return syms


def output_shape(t: TensorType, syms: dict) -> tuple:
    return tuple(d.eval(syms) for d in t.shape)


class RocdlRunner:
    """Runs the kernels of one compiled pipeline (steps holding RocdlKernels)."""

    needs_contiguous = False               # kernels take strided memrefs

    def __init__(self, cp, aliases: dict):
        self.cp = cp
        self.aliases = aliases
        self._kernels: dict = {}           # (step name, device type) -> callable kernel

    def set_configs(self, lookup) -> None:
        """No tunable launch configs (one block of 256 threads per row)."""

    def has(self, key) -> bool:
        return False

    def run_seen(self, key, inputs: dict) -> Optional[dict]:
        return None

    def kernel(self, step, device: torch.device):
        key = (step.name, device.type, device.index)
        k = self._kernels.get(key)
        if k is None:
            from .launch import load_kernel
            k = self._kernels[key] = load_kernel(step.source, device)
        return k

    def run(self, inputs: dict, key=None, config=None, interpret=None, dims=None) -> dict:
        env = dict(inputs)
        device = next((v.device for v in inputs.values() if isinstance(v, torch.Tensor)),
                      torch.device("cpu"))
        for step in self.cp.steps:
            if step.source is None:            # a host step (all_reduce): no kernel
                from ..reference.interpreter import run_host_step  # the rare path: lazily
                env.update(run_host_step(step, env))
                continue
            prog = step.program
            ins = {p.value.name: env[n] for p, n in zip(prog.params, step.inputs)}
            syms = bind_symbols(prog, ins)
            if dims:
                syms = {**dims, **syms}
            in_place = updated_params(prog)      # {result: parameter}: a KV cache's tensor
            outs = []
            for v in prog.returns:
                if v.name in in_place:
                    outs.append(ins[in_place[v.name]])
                    continue
                shape = output_shape(v.type, syms)
                outs.append(torch.empty(shape, dtype=v.type.dtype.torch_dtype(), device=device))
            args = [ins[p.value.name] for p in prog.params] + outs
            self.kernel(step, device)(args)
            for name, t in zip(step.outputs, outs):
                env[name] = t
        return {ret: env[val] for ret, val in self.cp.returns}
