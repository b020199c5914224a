"""Trace-time helpers of the Triton numerics (numerics.py, numerics_codes.py).

`constexpr_function`s and hand-marked builtins, callable from jit code and from the
interpreter: float bit patterns, the compile target's arch, whether it has hardware fp8
converts and a one-rounding fma, a tensor's rank.
"""
import triton
import triton.language as tl
from triton.runtime.jit import constexpr_function

@constexpr_function
def _f32_bits(x):
    """uint32 pattern of float32(x), RNE (Python's struct packing)."""
    import struct  # local: the jit dependency hasher rejects global non-jit callables
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


@constexpr_function
def _pow2(k):
    """2.0 ** k as a float."""
    return 2.0 ** int(k)


def _target_arch(_semantic) -> str:
    """The compile target's arch string (``sm90``, ``gfx942``); "" in the interpreter."""
    return "" if _semantic is None else str(getattr(_semantic.builder.options, "arch", "") or "")


def _nv_sm89(arch: str):
    """True/False for NVIDIA targets (hardware e4m3 converts from sm_89), None otherwise."""
    return int(arch[2:]) >= 89 if arch.startswith("sm") and arch[2:].isdigit() else None


def _fp8_native(is_fnuz, _semantic=None):
    """Whether this compile target converts fp32 -> e4m3 (fnuz) in hardware with a lowering
    we trust: NVIDIA sm_89+ (OCP), gfx94x (fnuz), gfx950 (OCP, triton >= 3.7; 3.6 emulates
    it in software). Elsewhere, and in the interpreter (no `_semantic`), False.
    Marked a builtin by hand (not @tl.core.builtin, which refuses the interpreter's call):
    the code generator then passes `_semantic`, and the jit hasher skips it."""
    if _semantic is None:
        return tl.constexpr(False)
    arch = _target_arch(_semantic)
    if getattr(is_fnuz, "value", is_fnuz):
        return tl.constexpr(arch.startswith("gfx94"))
    if _nv_sm89(arch) is not None:
        return tl.constexpr(_nv_sm89(arch))
    major, minor = (int(p) for p in triton.__version__.split(".")[:2])
    return tl.constexpr(arch == "gfx950" and (major, minor) >= (3, 7))


setattr(_fp8_native, "__triton_builtin__", True)


def _nv_satfinite(_semantic=None):
    """Whether ``.to(tl.float8e4nv)`` is NVIDIA's ``cvt.rn.satfinite.e4m3x2.f32`` (sm_89+):
    RNE, |v| beyond 448 and inf -> +-448, NaN -> 0x7F. Not in the interpreter."""
    return tl.constexpr(bool(_nv_sm89(_target_arch(_semantic))))


setattr(_nv_satfinite, "__triton_builtin__", True)


def _nv_target(_semantic=None):
    """Whether the compile target is NVIDIA (PTX inline asm allowed). Not in the
    interpreter, not on AMD."""
    return tl.constexpr(_target_arch(_semantic).startswith("sm"))


setattr(_nv_target, "__triton_builtin__", True)


@constexpr_function
def _interpreting(x):
    """True when `x` is an interpreter tensor (numpy handle), False when tracing to IR."""
    from triton.runtime.interpreter import TensorHandle
    return isinstance(getattr(x, "handle", None), TensorHandle)


@constexpr_function
def _fma_is_exact(x):
    """False only in an interpreter whose tl.fma rounds twice (triton < 3.8's numpy
    multiply-then-add); compiled code and newer interpreters have a one-rounding fma."""
    if not _interpreting(x):
        return True
    from triton.runtime import interpreter
    return hasattr(getattr(interpreter, "_interpreter", None), "fma_fp32")


@constexpr_function
def _rank(x):
    """Number of dims of a tensor (0 for a scalar)."""
    return len(getattr(x, "shape", ()) or ())
