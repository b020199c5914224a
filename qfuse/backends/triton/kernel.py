"""What the Triton renderer hands to the launcher: :class:`KernelSource` and its parts.

A ``KernelSource`` is plain data (strings, ints, tuples): the module text of one
``@triton.jit`` kernel plus everything a launcher needs to bind torch tensors to it
without the compiler (argument roles, tensor shapes as Python expressions over the
symbolic dims, constexpr rules, the grid rule). It is deterministic: the same kernel
renders to the same text, so ``key`` can name a cache entry.

Rule strings (shapes, constexprs, grid, checks) are Python expressions over the symbol
names of the pipeline (``M``, ``N``, ...), the config constexprs (``BLOCK_M``) and the
functions of :data:`RULE_FUNCS`; :func:`eval_rule` evaluates them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from ...dialect.types import Dim

__all__ = ["KernelArg", "TensorSpec", "ScalarSpec", "KernelSource", "TritonConfig",
           "np2", "cdiv", "eval_rule", "dim_rule", "SPACES"]

SPACES = ("row", "tensor_amax", "tile", "cache_block")


def np2(n: int) -> int:
    """Next power of two >= n (1 for n <= 1)."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def round_up(a: int, b: int) -> int:
    return cdiv(a, b) * int(b)


RULE_FUNCS = {"np2": np2, "cdiv": cdiv, "round_up": round_up, "max": max, "min": min}


def eval_rule(rule: str, env: dict) -> int:
    """Evaluate a rule string (see the module docstring) against ``env``."""
    return eval(rule, {"__builtins__": {}}, {**RULE_FUNCS, **env})  # noqa: S307 (our own text)


def dim_rule(d: Dim) -> str:
    """A Dim as a rule string: ``M``, ``128``, ``cdiv(N, 32)``, ``(A * B)``."""
    v = d.value
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    op, a, b = v
    a, b = dim_rule(a), dim_rule(b)
    return {"cdiv": f"cdiv({a}, {b})", "mul": f"({a} * {b})", "div": f"({a} // {b})",
            "round_up": f"round_up({a}, {b})"}[op]


@dataclass(frozen=True)
class KernelArg:
    """One parameter of the generated kernel, in signature order.

    ``role``: ``input`` / ``output`` / ``workspace`` (pointers; ``ref`` is the tensor name),
    ``dim`` (``ref`` is a symbol), ``stride`` (of tensor ``ref``, an ``io`` = input or
    output, dim ``dim``), ``scalar`` (``ref`` is a scalar parameter), ``constexpr`` (``ref``
    is the constexpr name). Tensor names are the pipeline's value names.
    ``sig`` is the Triton signature type used for cross-compiling (``*u8``, ``i32``, ...).
    """
    name: str
    role: str
    ref: str = ""
    dim: int = -1
    sig: str = ""
    io: str = ""


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the kernel reads or writes.

    ``dtype`` is the qfuse dtype name; ``shape`` holds rule strings; ``view`` is the torch
    dtype the tensor is reinterpreted as before binding (bf16 -> int16 bits, fp8 ->
    uint8 codes); ``init`` says how the launcher prepares an output before the kernel runs:
    ``("copy", input_name)`` (scatter targets: the kernel updates a copy of that input, or
    the input itself when the caller passes the same tensor).
    """
    name: str
    role: str                       # "input" | "output"
    dtype: str
    shape: tuple
    view: str
    init: Optional[tuple] = None
    contiguous: bool = False        # outputs whose address math assumes a dense layout


@dataclass(frozen=True)
class ScalarSpec:
    name: str
    dtype: str                      # "f32" | "i32" | "i64"
    default: Optional[float] = None


@dataclass(frozen=True)
class KernelSource:
    name: str
    space: str
    text: str                       # the whole generated module
    args: tuple                     # KernelArg, signature order
    tensors: tuple                  # TensorSpec (inputs first, then outputs)
    scalars: tuple                  # ScalarSpec
    symbols: tuple                  # symbolic dims, passed as i32 ``dim_<sym>``
    constexprs: tuple               # (name, rule) evaluated by the launcher (BLOCK_M, NATIVE are config)
    grid: tuple                     # rule strings, one per grid axis
    min_programs: int = 0           # launch at least this many programs (tensor_amax: 1)
    workspace: str = ""             # rule: int32 words of zeroed workspace ("" = none)
    checks: tuple = ()              # (rule, message): launch-time shape checks
    outputs: tuple = ()             # (output tensor name, pipeline value name), return order
    phases: tuple = ()              # (fn name, grid) run in order; () = ((name, grid),)
    col_split: int = 0              # > 0: BLOCK_0 may shrink to this (a column chunk per program)

    @property
    def launches(self) -> tuple:
        return self.phases or ((self.name, self.grid),)

    @property
    def key(self) -> str:
        """Content hash of the generated text (names the cached module file)."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def rows(self, dims: dict) -> int:
        """The rows the kernel's programs cover at ``dims`` (grid axis 0 at one row per
        program): what launch configs are tuned on, whatever the dims are called."""
        return eval_rule(self.grid[0], {**dims, "BLOCK_M": 1, "TILE": 1})

    def arg(self, name: str) -> KernelArg:
        return next(a for a in self.args if a.name == name)

    def tensor(self, name: str, role: str = "input") -> TensorSpec:
        return next(t for t in self.tensors if t.name == name and t.role == role)


@dataclass(frozen=True)
class TritonConfig:
    """Launch parameters that do not change the generated text.

    ``block_m``: rows per program in row space (a power of two >= 1); None picks one per
    launch so that a program holds about 4096 elements (16384 in the interpreter, where
    the cost is per program) of its widest row block. ``num_warps`` and ``num_stages`` go
    to the Triton launch (``num_warps`` None: about 32 elements per thread, 4..16 warps of 32
    on NVIDIA, 1..16 wavefronts of 64 on AMD (``warps``); in
    benchmarks/probes/kernel_probe.py on the H200, a per-token fp8 row of 8192 took 120 us
    with 4 warps, 124 with 8 and 138 with 16). ``native``: the NATIVE constexpr: True uses
    the hardware fp8 converts on the GPU (``cvt.rn.satfinite.e4m3x2.f32``,
    ``v_cvt_pk_fp8_f32``), False the integer emulation (bit exact everywhere, a few integer
    ops per element); None: see ``launch.native_fp8``. ``col_chunks``: split each row's
    columns over this many programs (a power of two; kernels without a row-wide reduction
    only, ``KernelSource.col_split``); None: on a GPU, when a grid has fewer than 128
    programs, enough chunks of at least 1024 columns to give it about 256 (decode sizes:
    more programs in flight); 1 in the interpreter.
    The interpreter always emulates. ``tile``: the tile edge of per_128x128 (format-fixed).
    """
    block_m: Optional[int] = None
    num_warps: Optional[int] = None
    native: Optional[bool] = None
    num_stages: int = 1
    tile: int = 128
    col_chunks: Optional[int] = None

    def __post_init__(self):
        if self.block_m is not None and (self.block_m < 1 or self.block_m & (self.block_m - 1)):
            raise ValueError(f"block_m must be a power of two >= 1, got {self.block_m}")
        if self.col_chunks is not None and (self.col_chunks < 1 or
                                            self.col_chunks & (self.col_chunks - 1)):
            raise ValueError(f"col_chunks must be a power of two >= 1, got {self.col_chunks}")

    def warps(self, elements: int, wave: int = 32) -> int:
        """Warps for a program of ``elements``: about 32 elements per lane. NVIDIA (32-lane
        warps): 4..16. AMD (``wave`` 64): 1..16 wavefronts, so that a lane holds as many
        elements as on NVIDIA (AITER's kernels launch 4 waves of 64 for a row of 8192)."""
        if self.num_warps is not None:
            return self.num_warps
        if wave == 32:
            return max(4, min(16, np2(elements // (32 * 32))))
        return max(1, min(16, np2(elements // (32 * wave))))

    def rows_per_program(self, widest_block: int, interpret: bool) -> int:
        if self.block_m is not None:
            return self.block_m
        budget, cap = (16384, 256) if interpret else (4096, 64)
        return max(1, min(cap, budget // max(1, widest_block)))
