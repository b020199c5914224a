"""``@quant_pipeline``: a decorated function (or a checked program) you call with tensors.

    @quant_pipeline                       # or @quant_pipeline(backend="triton")
    def per_token_fp8(x: bf16[M, N]):
        s = scale(x, fp8_e4m3fn, per_token)
        return round(x, s, fp8_e4m3fn), s

    q, s = per_token_fp8(x)

The module that defines it needs ``from __future__ import annotations`` (Python would
otherwise evaluate ``bf16[M, N]`` when the ``def`` runs; the body is never executed).

Calling it binds the arguments (positional or keyword, scalar defaults), validates them
(dtype, symbolic dims, device, last-dim contiguity, scalar ranges; messages name the
parameter), picks the backend (``triton`` for CUDA/HIP tensors, ``reference`` on the CPU
unless asked; ``backend="triton"`` on CPU runs Triton's interpreter), compiles once per
(backend, target) through the on-disk cache and launches. Triton itself specialises the
binary on dtypes, constexprs (row block sizes derive from N) and divisibility; M is a
runtime argument. The call goes through a torch custom op, so pipelines work inside
``torch.compile`` graphs and CUDA graph capture.

A definition with optional parameters (``= None``) or flags (``name: bool``) stands for
several programs (``qfuse.dsl.variants``): a call picks the one its arguments select
(``qfuse.runtime.variants``), compiles it on first use like any pipeline, and returns
every output of the definition, ``None`` where that variant has none. ``ir()``,
``source()``, ``warmup()`` and ``autotune()`` work on the principal variant (every
optional given, flags at their defaults); ``variant(**arguments)`` gives another.
"""
from __future__ import annotations

import threading
from typing import Optional

import torch

from ..dialect.types import ScalarType
from ..dialect.typed import TypedPipeline
from ..errors import InputError, UnsupportedError
from .artifact import CompiledPipeline
from .devices import device_name as _device_name
from ..backends.base import parse_target
from ..backends.registry import check_name, default_backend, get_backend
from .devices import device_target
from .executor import Executor
from .torch_op import aliased_params, register_pipeline_op
from .variants import VariantBinder, bind_names

__all__ = ["QuantPipeline", "quant_pipeline", "device_target"]



class QuantPipeline:
    """A compiled-on-demand pipeline. ``prebuilt`` maps target -> CompiledPipeline (bundles).
    ``variants``: a program with a ``family`` dispatches calls to its variants (False: the
    program itself, how each variant's own callable is made)."""

    def __init__(self, program: TypedPipeline, backend: Optional[str] = None, *,
                 prebuilt: Optional[dict] = None, allow_jit: bool = True,
                 index_check: Optional[str] = None, variants: bool = True):
        if backend is not None:
            check_name(backend)
        from .index_check import index_policy
        self.index_check = index_policy(index_check)     # see qfuse.runtime.index_check
        self.program = program
        self.name = program.name
        self.backend = backend
        self.allow_jit = allow_jit
        self._compiled: dict = dict(prebuilt or {})
        self._executors: dict = {}
        self._by_device: dict = {}     # device -> Executor (the backend/target choice, memoised)
        self._tuning = None            # (TuningTable, device name) to apply to executors
        self._lock = threading.Lock()
        self._aliases, _ = aliased_params(program)
        self._params = program.params
        self._names = [p.value.name for p in program.params]
        self._return_names = program.return_names or [v.name for v in program.returns]
        self._op = register_pipeline_op(program, self._run_eager, str(backend))
        self._nargs = len(self._names)
        self._name_defaults = [(p.value.name, p.default) for p in program.params]
        self._scalar_slots = [i for i, p in enumerate(self._params)
                              if isinstance(p.value.type, ScalarType)]
        self._first_tensor = next((i for i, p in enumerate(self._params)
                                   if not isinstance(p.value.type, ScalarType)), None)
        self.family = program.family if variants else None
        self._variants: dict = {}          # variant key -> QuantPipeline of that program
        if self.family is not None:
            self._binder = VariantBinder(self.family)
            self._return_names = list(self.family.return_names)

    # ----------------------------------------------------------------- variants
    def variant(self, *args, **kwargs) -> "QuantPipeline":
        """The callable of the program these arguments select (itself without variants)."""
        if self.family is None:
            return self
        return self._variant(self._binder.bind(args, kwargs)[0])

    def _variant(self, key: tuple) -> "QuantPipeline":
        qp = self._variants.get(key)
        if qp is None:
            with self._lock:
                qp = self._variants.get(key)
                if qp is None:
                    qp = QuantPipeline(self.family.variants[key], self.backend,
                                       allow_jit=self.allow_jit, index_check=self.index_check,
                                       variants=False)
                    if self._tuning is not None:
                        qp.use_tuning(*self._tuning)
                    self._variants[key] = qp
        return qp

    def _call_variant(self, args, kwargs, as_dict: bool):
        key, inputs = self._binder.bind(args, kwargs)
        outs = self._variant(key)(_as_dict=True, **inputs)
        return self._returns(self._binder.outputs(outs), as_dict)

    # ----------------------------------------------------------------- calling
    def _bind(self, args, kwargs) -> list:
        bound = bind_names(self.name, self._names, args, kwargs)
        out = []
        for p in self._params:
            n = p.value.name
            if n not in bound:
                if p.default is None:
                    raise InputError(f"{self.name}: missing argument {n} ({p.value.type})")
                bound[n] = p.default
            v = bound[n]
            if isinstance(p.value.type, ScalarType) and isinstance(v, torch.Tensor):
                v = v.item() if v.numel() == 1 else v
            out.append(v)
        return out

    def __call__(self, *args, _as_dict: bool = False, **kwargs):
        if self.family is not None:
            return self._call_variant(args, kwargs, _as_dict)
        if not torch.compiler.is_compiling():
            pos = args if not kwargs else None if args else self._from_keywords(kwargs)
            if pos is not None and len(pos) == self._nargs:
                outs = self._call_seen(pos)  # a signature this device's executor has bound
                if outs is not None:
                    return self._returns(outs, _as_dict)
        bound = self._bind(args, kwargs)
        self._check_devices(bound)
        inputs = dict(zip(self._names, bound))
        if not torch.compiler.is_compiling():
            # eager (and CUDA-graph capture): run directly; the custom op is for Dynamo, and
            # its dispatch would cost more host time than a large kernel takes
            outs = self._run_eager(inputs)
        else:
            results = self._op(*bound)
            it = iter([] if results is None else
                      results if isinstance(results, (tuple, list)) else [results])
            outs = {}
            for rn, v in zip(self._return_names, self.program.returns):
                alias = self._aliases.get(v.name)
                outs[rn] = inputs[alias] if alias is not None else next(it)
        return self._returns(outs, _as_dict)

    def _returns(self, outs: dict, as_dict: bool):
        """The call's result from outputs by return name: a dict, one tensor or a tuple
        (with None for an output a variant does not have)."""
        if as_dict:
            return {rn: outs[rn] for rn in self._return_names}
        vals = [outs[rn] for rn in self._return_names]
        return vals[0] if len(vals) == 1 else tuple(vals)

    def _from_keywords(self, kwargs: dict):
        """All-keyword arguments in parameter order, defaults filled in; None when a name
        is unknown or a parameter without default is missing (``_bind`` then says which)."""
        out, used = [], 0
        for n, d in self._name_defaults:
            if n in kwargs:
                out.append(kwargs[n])
                used += 1
            elif d is None:
                return None
            else:
                out.append(d)
        return tuple(out) if used == len(kwargs) else None

    def _call_seen(self, args: tuple):
        """The eager call of arguments in parameter order (as given, or from keywords by
        ``_from_keywords``) whose signature was validated and bound before
        (Executor.run_seen), skipping binding and the device checks (the signature fixes
        every tensor's device); None when that is not the case."""
        first = self._first_tensor
        if first is None or not isinstance(args[first], torch.Tensor):
            return None
        for i in self._scalar_slots:         # a scalar given as a tensor: bind converts it
            if isinstance(args[i], torch.Tensor):
                return None
        ex = self._by_device.get(args[first].device)
        if ex is None:
            return None
        return ex.run_seen(dict(zip(self._names, args)))

    def _check_devices(self, bound: list) -> None:
        seen = None
        for p, v in zip(self._params, bound):
            if isinstance(v, torch.Tensor):
                if seen is None:
                    seen = (v.device, p.value.name)
                elif v.device != seen[0]:
                    raise InputError(f"{self.name}: inputs are on different devices: {seen[1]} on "
                                     f"{seen[0]}, {p.value.name} on {v.device}; move them to one")

    def _device(self, inputs: dict) -> torch.device:
        return next((v.device for v in inputs.values() if isinstance(v, torch.Tensor)),
                    torch.device("cpu"))

    def _run_eager(self, inputs: dict) -> dict:
        device = self._device(inputs)
        ex = self._by_device.get(device)
        if ex is None:
            backend = self.backend or default_backend(device.type)
            b = get_backend(backend)
            target = str(b.target_for(parse_target(device_target(device))))
            ex = self._executors.get((backend, target))
            if ex is None:
                ex = self._executors[(backend, target)] = Executor(self.compiled(backend, target),
                                                                   self.index_check)
                if self._tuning is not None:
                    ex.set_tuning(self._tuning[0], self._tuning[1] or _device_name(device))
                elif b.tunable:                     # results of an earlier autotune run
                    from .tuning import load_tuning
                    name = _device_name(device)
                    kept = load_tuning(ex.cp, name)
                    if kept is not None:
                        ex.set_tuning(kept, name)
            self._by_device[device] = ex
        return ex.run(inputs)

    # --------------------------------------------------------------- compiling
    def compiled(self, backend: str = "triton", target: str = "cpu:interp") -> CompiledPipeline:
        key = (backend, target)
        with self._lock:
            cp = self._compiled.get(key)
            if cp is None:
                cp = self._compile(backend, target)
                self._compiled[key] = cp
            return cp

    def _compile(self, backend: str, target: str) -> CompiledPipeline:
        if get_backend(backend).runs_uncompiled and not (self.allow_jit and _compiler_installed()):
            # no compiler here (a bundle, a deployment box): the checked program, unfused; the
            # fused module's kernels compute the same bits (tests/runtime/test_reference_fused.py)
            names = self.program.return_names or [v.name for v in self.program.returns]
            return CompiledPipeline(self.name, self.program, backend, target,
                                    returns=[(n, v.name) for n, v in
                                             zip(names, self.program.returns)])
        if not self.allow_jit:
            raise UnsupportedError(f"{self.name}: no prebuilt kernels for {backend} on {target} "
                                   f"and JIT is off (build the bundle for this target, or "
                                   f"load it with allow_jit=True where the compiler is installed)")
        from .compiler import cached_compile
        return cached_compile(self.program, backend, target)

    def autotune(self, *args, candidates=None, timer=None, **kwargs):
        """Time launch configs on these inputs (see :mod:`qfuse.runtime.autotune`); the
        winners are used from now on and returned as a TuningTable (JSON: ``.dumps()``)."""
        from .autotune import tune_pipeline
        inputs = dict(zip([p.value.name for p in self._params], self._bind(args, kwargs)))
        return tune_pipeline(self, inputs, candidates=candidates, timer=timer)

    def use_tuning(self, table, device_name: Optional[str] = None) -> None:
        """Launch with a TuningTable's configs (e.g. one shipped in a bundle)."""
        self._tuning = (table, device_name)
        for ex in self._executors.values():
            ex.set_tuning(table, device_name or _device_name())

    def warmup(self, backend: str = "triton", target: str = "cpu:interp") -> CompiledPipeline:
        """Compile now (through the cache) instead of on the first call."""
        return self.compiled(backend, target)

    # ------------------------------------------------------------- inspection
    def ir(self, stage: str = "fused") -> str:
        """The MLIR at ``stage``: ``qfuse`` (as built from the DSL) or ``fused`` (after passes)."""
        from ..dialect.builder import build_module
        from ..dialect.text import print_module
        module = build_module([self.program])
        if stage == "qfuse":
            return print_module(module)
        if stage != "fused":
            raise UnsupportedError(f"ir(stage={stage!r}): use 'qfuse' or 'fused'")
        from ..passes import run_passes
        return print_module(run_passes(module, "default"))

    def source(self, target: str = "cpu:interp") -> str:
        """The generated Triton source of every kernel, in launch order."""
        cp = self.compiled("triton", target)
        return "\n\n".join(f"# ===== {name} =====\n{text}" for name, text in cp.sources().items())

    def __repr__(self) -> str:
        sig = ", ".join(f"{p.value.name}: {p.value.type}" for p in self._params)
        return f"<qfuse pipeline {self.name}({sig})>"


def _compiler_installed() -> bool:
    """Whether the MLIR bindings (the compiler's passes) can be imported here."""
    import importlib.util
    return importlib.util.find_spec("torch_mlir") is not None


def quant_pipeline(fn=None, *, backend: Optional[str] = None, index_check: Optional[str] = None):
    """Decorator: parse the function's source as a qfuse pipeline (bare or with kwargs).
    ``index_check``: ``defined`` (default) or ``raise``, see qfuse.runtime.index_check."""
    def wrap(f) -> QuantPipeline:
        from ..dsl import check_pipeline, parse_function
        qp = QuantPipeline(check_pipeline(parse_function(f)), backend=backend,
                           index_check=index_check)
        qp.__doc__ = f.__doc__
        qp.__wrapped__ = f
        return qp
    return wrap(fn) if fn is not None else wrap
