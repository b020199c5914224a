"""The compile flow: checked program -> qf MLIR -> passes -> kernels -> CompiledPipeline.

``compile_pipeline`` runs the MLIR pipeline once and renders each kernel function with
the backend; ``cached_compile`` looks the result up in the :class:`KernelCache` first.
The key (``compile_key``) is a sha256 over everything that changes the output:
qfuse's own fingerprint (version + a hash of its sources), the MLIR bindings' version,
the canonical qf IR text, the backend, the target, the backend's hash (its version and
its toolchain's: Triton; for rocdl torch-mlir, flydsl, ziglang's ld.lld and ptxas) and
the ``QFUSE_*`` codegen environment. A warm entry is found without running the passes.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Optional

from ..dialect.typed import TypedPipeline
from .artifact import CompiledPipeline, KernelStep
from .cache import KernelCache, cache_key

__all__ = ["compile_pipeline", "cached_compile", "compile_key", "qfuse_fingerprint",
           "canonical_ir", "compile_module_sources"]

QFUSE_VERSION = "0.1.0"


@functools.lru_cache(maxsize=1)
def qfuse_fingerprint() -> str:
    """qfuse version + sha256 of every qfuse source file (any edit invalidates the cache)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(QFUSE_VERSION.encode())
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".lark") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _versions(backend: Optional[str] = None) -> dict:
    """qfuse's, torch's and the MLIR bindings' versions, and ``backend``'s toolchain."""
    import torch
    out = {"qfuse": QFUSE_VERSION, "torch": torch.__version__}
    if backend is not None:
        from ..backends.registry import get_backend
        out.update(get_backend(backend).toolchain())
    try:
        from ..dialect.mlir import mlir_version
        out["mlir"] = mlir_version()
    except ImportError:
        pass
    return out


def canonical_ir(tp: TypedPipeline) -> str:
    """The verified qf module of ``tp`` without locations: the cache key's program part."""
    from ..dialect.builder import build_module
    from ..dialect.text import print_module
    return print_module(build_module([tp]))


def compile_key(tp: TypedPipeline, backend: str, target: str, options: Optional[dict] = None) -> str:
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("QFUSE_")
                 and k not in ("QFUSE_CACHE_DIR", "QFUSE_DEBUG"))
    from ..backends.base import parse_target
    from ..backends.registry import get_backend
    b = get_backend(backend)
    tgt = parse_target(target) if target != "any" else target
    return cache_key(qfuse_fingerprint(), _versions().get("mlir", ""), canonical_ir(tp),
                     backend, b.hash(tgt), repr(sorted((options or {}).items())), repr(env))


def _name(attrs, key="qf.name") -> str:
    from ..dialect.mlir import ir
    return ir.StringAttr(ir.DictAttr(attrs)[key]).value


def _schedule(module, pipeline: str) -> tuple:
    """Kernel calls of ``pipeline`` in a fused module: [(callee fn, in names, out names)], returns."""
    from ..dialect.mlir import ir
    funcs = {ir.StringAttr(op.operation.attributes["sym_name"]).value: op
             for op in module.body.operations if op.operation.name == "func.func"}
    main = funcs[pipeline]
    arg_names = [_name(a) for a in main.arg_attrs]
    block = main.regions[0].blocks[0]
    names = {arg: n for arg, n in zip(block.arguments, arg_names)}
    calls, returns = [], []
    for op in block.operations:
        if op.operation.name == "func.call":
            callee = funcs[ir.FlatSymbolRefAttr(op.operation.attributes["callee"]).value]
            outs = [_name(a) for a in callee.res_attrs]
            calls.append((callee, [names[v] for v in op.operands], outs))
            for r, n in zip(op.results, outs):
                names[r] = n
        elif op.operation.name == "func.return":
            ret_names = [_name(a) for a in main.res_attrs]
            returns = [(rn, names[v]) for rn, v in zip(ret_names, op.operands)]
    return calls, returns


def _kernel_steps(fused, pipeline: str, b, tgt) -> tuple:
    """``([KernelStep], returns)`` of ``pipeline`` in the fused module: each kernel
    function read (its parameters carry the qf.scale_of facts) and compiled by backend
    ``b`` for target ``tgt``."""
    from ..dialect.encoding import REASON_ATTR, SPACE_ATTR
    from ..dialect.mlir import ir
    from ..dialect.reader import read_function
    from .lowering import lowered_kernels
    calls, returns = _schedule(fused, pipeline)
    lowered = lowered_kernels(fused, b, tgt)     # a backend compiling from the passes
    steps = []
    for fn, ins, outs in calls:
        attrs = fn.operation.attributes
        space = ir.StringAttr(attrs[SPACE_ATTR]).value
        kprog = read_function(fn)
        name = ir.StringAttr(attrs["sym_name"]).value
        artifact = b.compile_kernel(kprog, space, tgt) if lowered is None else \
            b.compile_kernel(kprog, space, tgt, lowered=lowered.get(name))
        steps.append(KernelStep(name, space,
                                ir.StringAttr(attrs[REASON_ATTR]).value, ins, outs, artifact,
                                kprog))
    return steps, returns


def _backend_for(backend: str, target: str) -> tuple:
    """The backend object and the parsed target (None for ``any``), checked together."""
    from ..backends.base import parse_target
    from ..backends.registry import get_backend
    b = get_backend(backend)
    tgt = parse_target(target) if target != "any" else None
    if tgt is not None:
        b.check_target(tgt)
    return b, tgt


def compile_pipeline(tp: TypedPipeline, backend: str = "triton", target: str = "cpu:interp"
                     ) -> CompiledPipeline:
    """Run the passes and render every kernel of the fused module (no cache)."""
    from ..dialect.builder import build_module
    from ..dialect.text import print_module
    from ..passes import run_passes
    b, tgt = _backend_for(backend, target)
    fused = run_passes(build_module([tp]), "default")
    steps, returns = _kernel_steps(fused, tp.name, b, tgt)
    return CompiledPipeline(tp.name, tp, backend, target, print_module(fused), steps, returns,
                            _versions(backend))


def cached_compile(tp: TypedPipeline, backend: str, target: str,
                   cache: Optional[KernelCache] = None) -> CompiledPipeline:
    """``compile_pipeline`` through the on-disk cache (a hit skips the passes)."""
    cache = cache or KernelCache()
    key = compile_key(tp, backend, target)
    cp = cache.load(key, tp.name, f"{tp.name}.json",      # a damaged entry is a miss
                    lambda raw, what: CompiledPipeline.loads(raw, what, tp.name))
    if cp is not None:
        return cp
    cp = compile_pipeline(tp, backend, target)
    payload = {f"{tp.name}.json": cp.dumps(), f"{tp.name}.mlir": cp.fused_ir}
    for name, text in cp.sources().items():
        payload[f"{name}{cp.source_suffix}"] = text
    cache.put(key, tp.name, payload)
    return cp


def compile_module_sources(module) -> dict:
    """``{kernel name: Triton source}`` for every pipeline of ``module``, rendered from its
    kernel functions (the default passes run first; they leave fused pipelines as they
    are, so a fused module is rendered as it stands)."""
    from ..dialect.encoding import KERNEL_ATTR
    from ..dialect.mlir import ir
    from ..passes import run_passes
    b, tgt = _backend_for("triton", "cpu:interp")
    fused = run_passes(module, "default")
    out = {}
    for op in fused.body.operations:
        if op.operation.name == "func.func" and KERNEL_ATTR not in op.operation.attributes:
            steps, _ = _kernel_steps(fused, ir.StringAttr(op.attributes["sym_name"]).value,
                                     b, tgt)
            out.update({s.name: s.source.text for s in steps
                        if s.source is not None})  # a host step (all_reduce) has no text
    return out
