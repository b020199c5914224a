"""Trace-time helpers of the Triton numerics (numerics.py, numerics_codes.py).

`constexpr_function`s and hand-marked builtins, callable from jit code and from the
interpreter: float bit patterns, the compile target's arch, whether it has hardware fp8
converts and a one-rounding fma, a tensor's rank. What they ask Triton itself (the
target, the interpreter's tensors and fma) goes through triton_adapter.py.
"""
import triton.language as tl

from .triton_adapter import builtin, constexpr_function, target_arch, version


@constexpr_function
def _f32_bits(x):
    """uint32 pattern of float32(x), RNE (Python's struct packing)."""
    import struct  # local: the jit dependency hasher rejects global non-jit callables
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


@constexpr_function
def _pow2(k):
    """2.0 ** k as a float."""
    return 2.0 ** int(k)


def _nv_sm89(arch: str):
    """True/False for NVIDIA targets (hardware e4m3 converts from sm_89), None otherwise."""
    return int(arch[2:]) >= 89 if arch.startswith("sm") and arch[2:].isdigit() else None


@builtin
def _fp8_native(is_fnuz, _semantic=None):
    """Whether this compile target converts fp32 -> e4m3 (fnuz) in hardware with a lowering
    we trust: NVIDIA sm_89+ (OCP), gfx94x (fnuz), gfx950 (OCP, triton >= 3.7; 3.6 emulates
    it in software). Elsewhere, and in the interpreter (no `_semantic`), False.
    A builtin (triton_adapter.builtin): the code generator passes `_semantic`, and the jit
    hasher skips it."""
    if _semantic is None:
        return tl.constexpr(False)
    arch = target_arch(_semantic)
    if getattr(is_fnuz, "value", is_fnuz):
        return tl.constexpr(arch.startswith("gfx94"))
    if _nv_sm89(arch) is not None:
        return tl.constexpr(_nv_sm89(arch))
    return tl.constexpr(arch == "gfx950" and version() >= (3, 7))


@builtin
def _nv_satfinite(_semantic=None):
    """Whether ``.to(tl.float8e4nv)`` is NVIDIA's ``cvt.rn.satfinite.e4m3x2.f32`` (sm_89+):
    RNE, |v| beyond 448 and inf -> +-448, NaN -> 0x7F. Not in the interpreter."""
    return tl.constexpr(bool(_nv_sm89(target_arch(_semantic))))


@builtin
def _nv_target(_semantic=None):
    """Whether the compile target is NVIDIA (PTX inline asm allowed). Not in the
    interpreter, not on AMD."""
    return tl.constexpr(target_arch(_semantic).startswith("sm"))


@builtin
def _amd_target(_semantic=None):
    """Whether the compile target is AMD (gfx...). Not in the interpreter, not on NVIDIA."""
    return tl.constexpr(_semantic is not None and target_arch(_semantic).startswith("gfx"))


@constexpr_function
def _interpreting(x):
    """True when `x` is an interpreter tensor (numpy handle), False when tracing to IR."""
    # (imported here: the jit's dependency hasher refuses a global plain function)
    from .triton_adapter import is_interpreter_tensor
    return is_interpreter_tensor(x)


@constexpr_function
def _fma_is_exact(x):
    """False only in an interpreter whose tl.fma rounds twice (triton < 3.8's numpy
    multiply-then-add); compiled code and newer interpreters have a one-rounding fma."""
    if not _interpreting(x):
        return True
    from .triton_adapter import interpreter_fma_is_exact
    return interpreter_fma_is_exact()


@constexpr_function
def _rank(x):
    """Number of dims of a tensor (0 for a scalar)."""
    return len(getattr(x, "shape", ()) or ())
