"""The ladder below the ``gpu`` form: ``gpu`` -> ``rocdl`` / ``nvvm`` -> ``llvm`` ->
``amdgcn`` / ``ptx`` -> ``hsaco`` / ``cubin``, each stage a function of the one before.

=========  =====================================================================  ==========
stage      what it is                                                             made by
=========  =====================================================================  ==========
loops      the kernel's loop nest (``func.func``; the CPU twin runs it)            kernel.py
gpu        the same kernel on the ``gpu`` dialect in a ``gpu.module``              kernel.py
rocdl      ``convert-arith-to-amdgpu`` (native fp8 / fp4 converts of the chip),    torch-mlir
           ``arith-expand`` (E8M0 / E2M1 types), ``convert-gpu-to-rocdl``
nvvm       ``convert-gpu-to-nvvm`` for sm_90 (the NVVM twin)                       torch-mlir
llvm       the lowered ``gpu.module`` in generic form: the handover text           torch-mlir
amdgcn     ``rocdl-attach-target`` + ``gpu-module-to-binary{format=isa}``           flydsl
ptx        ``nvvm-attach-target`` + ``gpu-module-to-binary{format=isa}``            flydsl
hsaco      ``ld.lld -shared`` of the assembled object (a loadable code object)     flydsl, lld
cubin      ``ptxas -arch=sm_90``                                                   ptxas
=========  =====================================================================  ==========

``math`` ops become LLVM intrinsics (``convert-math-to-llvm``; on NVVM after the GPU
conversion, which would otherwise call libdevice): ``llvm.sqrt`` is correctly rounded on
both GPUs, where the GPU conversions would call ``__nv_sqrtf`` / ``__ocml_sqrt_f32`` from
device libraries that are not installed.
"""
from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path

from ...dialect.mlir import MLIRError, PassManager, ir
from ..base import Target
from .toolchain import ToolError, flydsl_mlir, importlib_module, ld_lld, ptxas

__all__ = ["STAGES", "emit", "to_rocdl", "to_nvvm", "to_isa", "assemble_hsaco", "to_cubin",
           "build_binaries", "gpu_stage", "GPU_ARCHES"]

#: the stages ``qfuse ir --emit`` knows below ``fused``, in order
STAGES = ("loops", "gpu", "rocdl", "llvm", "amdgcn", "ptx")
GPU_ARCHES = {"gfx942", "gfx950", "sm_90"}


def _run(text: str, pipeline: str, what: str) -> ir.Module:
    ctx = ir.Context()
    with ctx:
        try:
            m = ir.Module.parse(text)
            PassManager.parse(pipeline).run(m.operation)
        except MLIRError as e:
            raise ToolError(f"rocdl backend: {what} failed: {e}") from None
    return m


def _arch(target: Target) -> str:
    if target.arch not in GPU_ARCHES:
        raise ToolError(f"rocdl backend: no code objects for {target} (it builds "
                        f"hip:gfx942, hip:gfx950 and cuda:sm_90)")
    return target.arch


def to_rocdl(gpu_text: str, target: Target) -> str:
    """The ``gpu.module`` lowered to the LLVM + ROCDL dialects for an AMD chip."""
    chip = _arch(target)
    pipe = (f"builtin.module(gpu.module(convert-math-to-llvm, convert-arith-to-amdgpu{{chipset="
            f"{chip}}}, arith-expand{{include-f8e8m0=true include-f4e2m1=true}}, "
            f"convert-scf-to-cf, convert-gpu-to-rocdl{{chipset={chip}}}), "
            f"reconcile-unrealized-casts)")
    return str(_run(gpu_text, pipe, f"convert-gpu-to-rocdl ({chip})"))


def to_nvvm(gpu_text: str, target: Target) -> str:
    """The ``gpu.module`` lowered to the LLVM + NVVM dialects (the NVVM twin)."""
    _arch(target)
    # math ops stay out of convert-gpu-to-nvvm (it would call libdevice's __nv_sqrtf and
    # marks llvm.sqrt illegal) and become LLVM intrinsics after it: sqrt.rn.f32
    pipe = ("builtin.module(gpu.module(convert-scf-to-cf, convert-gpu-to-nvvm{allowed-dialects="
            "arith,cf,func,memref,index,nvvm}, convert-math-to-llvm), reconcile-unrealized-casts)")
    return str(_run(gpu_text, pipe, "convert-gpu-to-nvvm"))


def gpu_stage(gpu_text: str, target: Target) -> str:
    """``rocdl`` or ``nvvm``: the conversion for ``target``'s platform."""
    return to_rocdl(gpu_text, target) if target.platform == "hip" else to_nvvm(gpu_text, target)


def handover(lowered: str) -> str:
    """The lowered module in MLIR's generic form: what flydsl's MLIR parses."""
    ctx = ir.Context()
    with ctx:
        return ir.Module.parse(lowered).operation.get_asm(print_generic_op_form=True)


def _serialize(lowered: str, target: Target, fmt: str, toolkit: str = "") -> bytes:
    """flydsl's ``gpu-module-to-binary{format=fmt}`` of a lowered module: the object's
    bytes (AMDGCN / PTX text for ``isa``, the linked code object for ``bin``)."""
    chip = _arch(target)
    fir, fpm = flydsl_mlir()
    gpu_dialect = importlib_module("flydsl._mlir.dialects.gpu")
    attach = (f"rocdl-attach-target{{chip={chip}}}" if target.platform == "hip"
              else f"nvvm-attach-target{{chip={chip}}}")
    opts = f"format={fmt}" + (f" toolkit={toolkit}" if toolkit else "")
    with fir.Context() as ctx:
        ctx.allow_unregistered_dialects = True
        try:
            m = fir.Module.parse(handover(lowered))
            fpm.parse(f"builtin.module({attach}, gpu-module-to-binary{{{opts}}})").run(
                m.operation)
        except Exception as e:        # flydsl's MLIRError is its own class
            raise ToolError(f"rocdl backend: gpu-module-to-binary{{{opts}}} ({chip}) "
                            f"failed: {e}") from None
        binary = next(op for op in m.body.operations if op.operation.name == "gpu.binary")
        return gpu_dialect.ObjectAttr(binary.attributes["objects"][0]).object


def to_isa(lowered: str, target: Target) -> str:
    """AMDGCN assembly (hip) or PTX (cuda) of a lowered module, by flydsl's
    ``gpu-module-to-binary{format=isa}`` (its LLVM has both targets)."""
    return _serialize(lowered, target, "isa").decode()


def assemble_hsaco(lowered: str, target: Target) -> bytes:
    """A linked, loadable code object: flydsl assembles it (``format=bin``) and links it
    with ``<toolkit>/llvm/bin/ld.lld``, here a directory whose ``ld.lld`` runs the
    registry's lld (ziglang), so no ROCm install is needed."""
    lld = ld_lld()
    with tempfile.TemporaryDirectory(prefix="qfuse-lld-") as tmp:
        bindir = Path(tmp) / "llvm" / "bin"
        bindir.mkdir(parents=True)
        wrapper = bindir / "ld.lld"
        wrapper.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in lld)
                           + ' "$@"\n')
        wrapper.chmod(0o755)
        return _serialize(lowered, target, "bin", tmp)


def to_cubin(ptx: str, target: Target) -> bytes:
    """``ptxas -arch=sm_90`` of the PTX (the triton wheel's ptxas)."""
    with tempfile.TemporaryDirectory(prefix="qfuse-ptxas-") as tmp:
        src, out = Path(tmp) / "k.ptx", Path(tmp) / "k.cubin"
        src.write_text(ptx)
        run = subprocess.run([ptxas(), f"-arch={target.arch}", str(src), "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise ToolError(f"rocdl backend: ptxas failed: {run.stderr.strip()[:500]}")
        return out.read_bytes()


def build_binaries(kernel, target: Target) -> dict:
    """``{ext: ...}`` of one RocdlKernel for ``target``: amdgcn + hsaco, or ptx + cubin
    (kept on the kernel, built once)."""
    key = str(target)
    got = kernel.binaries.get(key)
    if got is not None:
        return got
    gpu_text = kernel.gpu.get(key)
    if gpu_text is None:
        raise ToolError(f"rocdl backend: kernel {kernel.name} was not compiled for {target}")
    lowered = gpu_stage(gpu_text, target)
    if target.platform == "hip":
        out = {"amdgcn": to_isa(lowered, target), "hsaco": assemble_hsaco(lowered, target)}
    else:
        ptx = to_isa(lowered, target)
        out = {"ptx": ptx, "cubin": to_cubin(ptx, target)}
    kernel.binaries[key] = out
    return out


def emit(kernel, stage: str, target: Target) -> str:
    """The text of one stage of the ladder for one RocdlKernel (``qfuse ir --emit``)."""
    if stage == "loops":
        return kernel.loops
    if stage == "amdgcn" and target.platform != "hip" or stage == "ptx" and \
            target.platform != "cuda":
        want = "hip:gfx942 or hip:gfx950" if stage == "amdgcn" else "cuda:sm_90"
        raise ToolError(f"--emit {stage} is for {want}, not {target}")
    gpu_text = kernel.gpu.get(str(target))
    if gpu_text is None:
        raise ToolError(f"rocdl backend: no gpu form of {kernel.name} for {target}")
    if stage == "gpu":
        return gpu_text
    lowered = gpu_stage(gpu_text, target)
    if stage == "rocdl":
        return lowered
    if stage == "llvm":
        return handover(lowered)
    return to_isa(lowered, target)
