"""``TritonRunner``: the launches of one compiled pipeline, bound once per call signature.

The runtime's executor validates a call (signature, shape requirements, scalars, index
policy) and hands it here. A first call of a signature binds every kernel (dims from
shapes, outputs, views, constexprs, grid, argument list: hundreds of microseconds of
Python), launches it, and keeps a plan; a later call of the same signature swaps the new
tensors into the bound launches (``run_seen``). A KV cache (or its scale table) passed in
is updated in place: the caller's tensor is the kernel's output.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import torch

from .launch import TritonKernel, bind_launch, one_launch

__all__ = ["TritonRunner"]


def _plan(bound: list, returns: list, env: dict) -> tuple:
    """``(steps, single)`` for TritonRunner._run_fast from the bound launches of a first
    call (``env``: its values by name, to find each launch's device). ``single``: for one
    launched kernel without aliased outputs, ``(launch, device, [(return name, from the
    outputs?, tensor or input name)])``, else None."""
    steps = []
    for step, launch, in_names, outmap, dims in bound:
        device = next((env[n].device for n in in_names if isinstance(env[n], torch.Tensor)),
                      None)
        steps.append((step, launch, in_names, device,
                      [(t, a) for t, _, a in outmap if a is not None],
                      [(t, v) for t, v, _ in outmap], dims))
    single = None
    if len(steps) == 1 and steps[0][1] is not None and not steps[0][4]:
        _, launch, _, device, _, assigns, _ = steps[0]
        made = {v: t for t, v in assigns}
        single = (launch, device, [(ret, val in made, made.get(val, val)) for ret, val in returns])
    return steps, single


def _known(kern: TritonKernel, dims: Optional[dict]) -> Optional[dict]:
    """The pipeline's sizes of the symbols ``kern`` takes (it checks them against its
    inputs' shapes)."""
    if not dims:
        return None
    return {s: dims[s] for s in kern.source.symbols if s in dims}


class TritonRunner:
    """Runs the kernels of one compiled pipeline (``cp.steps`` with KernelSources)."""

    needs_contiguous = True                # kernels address the last dim densely

    def __init__(self, cp, aliases: dict):
        self.cp = cp
        self.aliases = aliases             # {cache_write result value: cache parameter}
        self._kernels: dict = {}
        self._fast: dict = {}              # call signature -> _plan(...) of its launches
        self._configs = None               # (kernel name, rows) -> TritonConfig or None
        self._pairs: dict = {}             # (amax step, row step) -> one launch, or False

    def set_configs(self, lookup) -> None:
        """Launch with the configs ``lookup(kernel name, rows)`` gives (a tuning table's,
        qfuse.runtime.tuning) from now on; None: the default rule."""
        self._configs = lookup
        self._fast.clear()

    def config_for(self, step, dims: dict):
        """The launch config of ``step`` at ``dims``, or None (the default rule)."""
        if self._configs is None:
            return None
        return self._configs(step.name, self.kernel(step).source.rows(dims))

    def kernel(self, step) -> TritonKernel:
        k = self._kernels.get(step.name)
        if k is None:
            k = self._kernels[step.name] = TritonKernel(step.source)
        return k

    def run(self, inputs: dict, key=None, config=None, interpret: Optional[bool] = None,
            dims: Optional[dict] = None) -> dict:
        """Bind and launch every kernel; with ``key`` (the call signature) keep the plan.
        ``dims``: the pipeline's symbol sizes (a kernel whose inputs show a symbol only
        inside a derived dim, ``B // 2``, cannot infer it from their shapes)."""
        env = dict(inputs)
        bound = []
        on_cpu = all(v.device.type == "cpu" for v in inputs.values() if isinstance(v, torch.Tensor))
        interp = on_cpu if interpret is None else interpret
        host = False
        steps, i = self.cp.steps, 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if step.source is None:        # a host step (all_reduce): no kernel to launch
                from ..reference.interpreter import run_host_step  # the rare path: lazily
                env.update(run_host_step(step, env))
                host = True        # rebound on every call: no fast plan
                continue
            one = self._one_launch(step, steps[i], env, dims) \
                if config is None and i < len(steps) else None
            if one is not None:            # the amax kernel and its row kernel: one launch
                step, kern, kdims, cfg = one
                i += 1
            else:
                kern = self.kernel(step)
                kdims = kern.bind_dims({n: env[n] for n in step.inputs}, _known(kern, dims))
                cfg = config or self.config_for(step, kdims)
            ins = {n: env[n] for n in step.inputs}
            outs = kern.allocate_outputs(ins, kdims)
            for tensor_name, value_name in kern.source.outputs:
                alias = self.aliases.get(value_name)
                if alias is not None:
                    outs[tensor_name] = inputs[alias]        # update the cache in place
            kern.launch(ins, outs, kdims, cfg, interpret)
            outmap = [(t, v, self.aliases.get(v)) for t, v in kern.source.outputs]
            bound.append((step, bind_launch(kern, ins, outs, kdims, cfg, interp),
                          list(step.inputs), outmap, kdims))
            for tensor_name, value_name in kern.source.outputs:
                env[value_name] = outs[tensor_name]
        if key is not None and config is None and interpret is None and not host:
            self._fast[key] = _plan(bound, self.cp.returns, env)
        return {ret: env[val] for ret, val in self.cp.returns}

    def _one_launch(self, step, after, env: dict, dims: Optional[dict]):
        """``(pseudo step, kernel, dims, config)`` of one launch for ``step`` (a tensor_amax
        kernel) and ``after`` (the row kernel reading its scale) when the tensor fits one
        program at these shapes (launch/one_launch.py), else None."""
        if step.source.space != "tensor_amax" or after.source is None or not one_launch.enabled():
            return None
        key = (step.name, after.name)
        pair = self._pairs.get(key)
        if pair is None:
            src = one_launch.one_launch_source(step.source, after.source)
            if src is None:
                pair = False
            else:
                made = {t for t, _ in step.source.outputs}
                names = list(step.inputs) + [n for n in after.inputs
                                             if n not in made and n not in step.inputs]
                pair = (SimpleNamespace(name=src.name, source=src, inputs=names),
                        TritonKernel(src))
                self._kernels[src.name] = pair[1]
            self._pairs[key] = pair
        if pair is False:
            return None
        pseudo, kern = pair
        kdims = kern.bind_dims({n: env[n] for n in pseudo.inputs}, _known(kern, dims))
        cfg = one_launch.one_program_config(step.source, after.source, kern, kdims)
        return None if cfg is None else (pseudo, kern, kdims, cfg)

    def has(self, key) -> bool:
        return key in self._fast

    def run_seen(self, key, inputs: dict) -> Optional[dict]:
        """A signature bound before: swap the new tensors into its launches; None if it
        was not bound."""
        plan = self._fast.get(key)
        if plan is None:
            return None
        steps, single = plan
        if single is not None:           # one kernel, no cache, launched: the common case
            launch, device, rets = single
            outs = launch.allocate(inputs, device)
            launch(inputs, outs)
            return {ret: (outs if from_out else inputs)[name] for ret, from_out, name in rets}
        env = dict(inputs)
        for step, launch, in_names, device, aliased, assigns, dims in steps:
            ins = {n: env[n] for n in in_names}
            if launch is None:           # an empty grid (M = 0): outputs are empty
                outs = self.kernel(step).allocate_outputs(ins, dims)
            else:
                cache = {t: inputs[a] for t, a in aliased}
                outs = launch.allocate(ins, device, skip=cache)
                outs.update(cache)               # the caller's cache, updated in place
                launch(ins, outs)
            for tensor_name, value_name in assigns:
                env[value_name] = outs[tensor_name]
        return {ret: env[val] for ret, val in self.cp.returns}
