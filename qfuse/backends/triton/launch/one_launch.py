"""One launch for a dynamic per-tensor scale and the kernel that uses it, at small sizes.

A dynamic ``scale(per_tensor)`` is planned as two kernels (``qfuse/passes/plan.py``, rule
3): a grid-wide amax kernel (space ``tensor_amax``) that stores the scale, then the row
kernel that reads it. When the whole tensor fits one program, the second launch is pure
overhead (at decode sizes a launch costs more than either kernel's work), so at bind time,
from the shape, the launcher runs both as ONE launch of one program instead:

    @triton.jit
    def <row kernel>__one(<the amax kernel's arguments>, <the row kernel's arguments>):
        <amax kernel>(..., ONE_PROGRAM=1)     # the program's amax is the tensor's: no atomics
        tl.debug_barrier()                    # its scale store is seen by every thread
        <row kernel>(...)                     # reads the scale back, as it would from memory

The module text is the two kernels' own texts plus that wrapper, built here from their
:class:`KernelSource` s (a bundle needs nothing new; the wrapper is made on the GPU
machine). The scale is the same bits (the same max over the same |v| bits, the same
``scale_from_amax`` lines) and the row kernel the same code reading it, so the outputs are
bit-identical to the two launches (tests/backends/triton/test_one_launch.py checks it in
the interpreter at, below and above the threshold and at M = 0 and 1).

Used when: the amax kernel is followed by a row kernel that reads its scale, neither has
phases or outputs initialised from inputs (a cache), the caller gave no launch config (an
autotune run times the kernels it tunes), ``QFUSE_ONE_LAUNCH`` is not ``0`` (for A/B
timing), and one program of ``BLOCK_M = np2(rows)`` rows covers both kernels' grids with
at most :data:`ONE_PROGRAM_MAX_ELEMENTS` elements of the widest row block.
"""
from __future__ import annotations

import os
from typing import Optional

from ..kernel import KernelArg, KernelSource, TritonConfig, eval_rule, np2

__all__ = ["ONE_PROGRAM_MAX_ELEMENTS", "ENV", "one_launch_source", "one_program_config",
           "enabled"]

# The largest tile (rows x widest row block, in elements) that the one program may hold.
# The default launch rule gives a program about 4096 elements (TritonConfig.block_m); one
# program of 16 warps holding 16384 keeps 32 fp32 values per thread on NVIDIA (16 per lane
# on AMD's 64-lane waves), well inside the register file, so the single program is not
# spilling where it replaces two launches. Decode rows it covers: 1 x N for N <= 16384,
# 16 x N for N <= 1024; 16 x 7168 (131072) stays two launches. A guess from the register
# budget, not a measurement: bench.py's decode rows (M = 1, 16, 64) time it, and
# QFUSE_ONE_LAUNCH=0 times the two-launch path on the same machine.
ONE_PROGRAM_MAX_ELEMENTS = 16384
ENV = "QFUSE_ONE_LAUNCH"


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def _prefixed(a: KernelArg, prefix: str, made: set) -> KernelArg:
    """``a`` renamed into the wrapper's signature; a tensor the first kernel makes (the
    scale) is an output of the one launch, also where the second kernel reads it."""
    role = "output" if a.role == "input" and a.ref in made else a.role
    io = "output" if a.role == "stride" and a.io == "input" and a.ref in made else a.io
    return KernelArg(prefix + a.name, role, a.ref, a.dim, a.sig, io)


def one_launch_source(amax: KernelSource, rows: KernelSource) -> Optional[KernelSource]:
    """The KernelSource of the one launch of ``amax`` (a tensor_amax kernel) then ``rows``
    (the row kernel reading its scale), or None where the pair does not qualify."""
    made = {t for t, _ in amax.outputs}
    if (amax.space != "tensor_amax" or rows.space != "row" or amax.phases or rows.phases
            or rows.workspace or not made & {t.name for t in rows.tensors if t.role == "input"}
            or any(t.init for t in rows.tensors if t.role == "output")
            or "ONE_PROGRAM" not in dict(amax.constexprs)):
        return None
    cexpr = {}
    for name, rule in amax.constexprs + rows.constexprs:
        if name == "ONE_PROGRAM":
            continue
        if cexpr.setdefault(name, rule) != rule:
            return None                     # the two would want different blocks
    a_args = [_prefixed(a, "a_", made) for a in amax.args if a.role != "constexpr"]
    b_args = [_prefixed(a, "b_", made) for a in rows.args if a.role != "constexpr"]
    c_args = [KernelArg(n, "constexpr", n, sig="constexpr") for n in cexpr]
    name = f"{rows.name}__one"

    def call(src, prefix):
        return ", ".join("1" if a.name == "ONE_PROGRAM" else
                         a.name if a.role == "constexpr" else prefix + a.name
                         for a in src.args)
    wrapper = ["", "", "@triton.jit", f"def {name}("]
    wrapper += [f"    {a.name}," for a in a_args + b_args]
    wrapper += [f"    {a.name}: tl.constexpr," for a in c_args]
    wrapper += ["):",
                f"    {amax.name}({call(amax, 'a_')})",
                "    tl.debug_barrier()",
                f"    {rows.name}({call(rows, 'b_')})"]
    text = amax.text + "\n\n" + rows.text + "\n".join(wrapper) + "\n"
    tensors, seen = [], set()
    for t in amax.tensors + rows.tensors:
        if t.role == "input" and t.name in made:
            continue                        # the scale: the first kernel's output
        if (t.role, t.name) not in seen:
            seen.add((t.role, t.name))
            tensors.append(t)
    tensors.sort(key=lambda t: t.role != "input")
    scalars = {s.name: s for s in amax.scalars + rows.scalars}
    symbols = list(amax.symbols) + [s for s in rows.symbols if s not in amax.symbols]
    return KernelSource(name=name, space="row", text=text, args=tuple(a_args + b_args + c_args),
                        tensors=tuple(tensors), scalars=tuple(scalars.values()),
                        symbols=tuple(symbols), constexprs=tuple(cexpr.items()), grid=("1",),
                        min_programs=1, workspace=amax.workspace,
                        checks=amax.checks + rows.checks, outputs=amax.outputs + rows.outputs)


def one_program_config(amax: KernelSource, rows: KernelSource, kern, dims: dict
                       ) -> Optional[TritonConfig]:
    """The launch config of the one launch (``kern``: a TritonKernel of
    :func:`one_launch_source`) at ``dims``, or None when the tensor does not fit one
    program (then the two kernels launch as planned)."""
    n = max(rows.rows(dims), amax.rows(dims))
    cfg = TritonConfig(block_m=np2(max(n, 1)), col_chunks=1)
    cexpr = kern._constexprs(cfg, dims, interpret=False)
    widest = max([v for k, v in cexpr.items() if k.startswith("BLOCK_") and k != "BLOCK_M"],
                 default=1)
    if widest * cexpr["BLOCK_M"] > ONE_PROGRAM_MAX_ELEMENTS:
        return None
    env = {**dims, **cexpr}
    for src in (amax, rows):
        if any(eval_rule(g, env) > 1 for g in src.grid):
            return None
    return cfg
