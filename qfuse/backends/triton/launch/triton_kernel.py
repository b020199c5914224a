"""``TritonKernel``: bind torch tensors to a rendered kernel and run it.

``launch(inputs, outputs, dims, config, interpret)`` checks the tensors against the
kernel's declared dtypes and symbolic shapes (an :class:`InputError` names the tensor),
reinterprets storage (bf16 as int16 bits, fp8 as uint8 codes), prepares outputs (a copy of
the input cache for scatters), evaluates the constexpr
and grid rules, and launches: on CPU tensors in the Triton interpreter (bit exact: the
``NATIVE`` constexpr is False), on GPU tensors through the normal jit with
``enable_fp_fusion=False`` (no FMA contraction). An empty grid is skipped.
"""
from __future__ import annotations

import os

from typing import Optional

import torch

from ....dialect.types import dtype as qdtype
from ....errors import InputError
from ..kernel import KernelSource, TritonConfig, eval_rule, np2
from ..triton_adapter import interpreting
from .loader import load_module

__all__ = ["TritonKernel"]


def _describe(t) -> str:
    if isinstance(t, torch.Tensor):
        return f"{str(t.dtype).replace('torch.', '')} tensor of shape {tuple(t.shape)}"
    return f"{type(t).__name__} {t!r}"


def _hip_runtime() -> bool:
    """Whether this torch runs on AMD GPUs (the launch target of an unnamed device)."""
    return bool(getattr(torch.version, "hip", None))


def native_fp8(cfg: TritonConfig, block_m: int, hip: Optional[bool] = None) -> bool:
    """Hardware fp8 converts on a GPU: ``TritonConfig.native`` or ``QFUSE_NATIVE_FP8=1/0``
    decide; by default they are on for NVIDIA everywhere and, on AMD, for one-row programs.

    NVIDIA (sm_89+) lowers them to ``cvt.rn.satfinite.e4m3x2.f32`` on the clamped value
    (numerics.qf_fp8_bits). Measured on the H200 (triton 3.6): every example pipeline at
    M in {1, 16, 4096, 16384} and, with multi-row programs, at 64x352, 37x1024 and 300x96
    matched the reference, and an every-fp32-upper-half sweep matched the numpy oracle.
    (An earlier lowering that bit-fiddled the converted bytes gave wrong codes with multi-row
    programs at N = 333; that test passes now.) AMD is not measured here: gfx94x keeps the
    one-row rule of that earlier lowering. There a saturating store is a clamp, a NaN select
    and the hardware convert (numerics_codes._qf_fp8_amd_sat: the convert's semantics are
    taken from HIP's headers and Triton's exhaustive downcast tests, not measured here);
    ``QFUSE_NATIVE_FP8=0`` gives the integer emulation."""
    if cfg.native is not None:
        return bool(cfg.native)
    env = os.environ.get("QFUSE_NATIVE_FP8")
    if env in ("0", "1"):
        return env == "1"
    if hip is None:
        hip = _hip_runtime()
    return not hip or block_m == 1


SMALL_GRID = 128          # fewer row programs than this (about an H200's 132 SMs): decode sizes
TARGET_PROGRAMS = 256     # what the small-grid rules aim for


def _spread(programs: int) -> int:
    """The power-of-two factor that takes ``programs`` to about TARGET_PROGRAMS."""
    return np2(-(-TARGET_PROGRAMS // max(1, programs)))


I32_MAX = 2 ** 31 - 1


def _check_i32(src: KernelSource, env: dict) -> None:
    """Dims reach the kernel as i32 arguments and its row counts are i32 products of them
    (``n_rows = dim_T * dim_H``): refuse sizes that would wrap instead of masking rows out."""
    for s in src.symbols:
        if env[s] > I32_MAX:
            raise InputError(f"{src.name}: dim {s} = {env[s]} exceeds the Triton backend's "
                             f"32-bit dims (at most {I32_MAX}); split the call")
    for _, grid in src.launches:
        rows = eval_rule(grid[0], {**env, "BLOCK_M": 1, "TILE": 1})
        if rows > I32_MAX:
            raise InputError(f"{src.name}: {rows} rows ({grid[0]} at one row per program) exceed "
                             f"the Triton backend's 32-bit row count; split the call")


class TritonKernel:
    """A rendered kernel, loaded lazily. ``source`` is a :class:`KernelSource`."""

    def __init__(self, source: KernelSource):
        self.source = source
        self._fns = None

    @property
    def fns(self) -> list:
        """The ``@triton.jit`` function of each phase, in launch order."""
        if self._fns is None:
            mod = load_module(self.source.text, self.source.name, self.source.key)
            self._fns = [getattr(mod, name) for name, _ in self.source.launches]
        return self._fns

    @property
    def fn(self):
        return self.fns[0]

    # ------------------------------------------------------------------ binding
    def bind_dims(self, inputs: dict, dims: Optional[dict] = None) -> dict:
        """Symbol values from the input shapes (and ``dims``); checks dtypes and shapes."""
        src = self.source
        env = dict(dims or {})
        origin = {k: "dims" for k in env}
        later = []
        for spec in src.tensors:
            if spec.role != "input":
                continue
            t = inputs.get(spec.name)
            want = qdtype(spec.dtype).torch_dtype()
            if not isinstance(t, torch.Tensor) or t.dtype != want or t.dim() != len(spec.shape):
                raise InputError(f"{spec.name}: expected {spec.dtype}[{', '.join(spec.shape)}], "
                                 f"got {_describe(t) if spec.name in inputs else 'nothing'}")
            for i, (rule, size) in enumerate(zip(spec.shape, t.shape)):
                if rule.isidentifier():
                    if rule in env and env[rule] != size:
                        raise InputError(f"{spec.name}: dim {i} is {size} but {rule}={env[rule]} "
                                         f"from {origin[rule]}")
                    env.setdefault(rule, size)
                    origin.setdefault(rule, spec.name)
                else:
                    later.append((spec.name, i, rule, size))
        for name, i, rule, size in later:
            want = eval_rule(rule, env)
            if want != size:
                raise InputError(f"{name}: dim {i} must be {rule} = {want}, got {size}")
        missing = [s for s in src.symbols if s not in env]
        if missing:
            raise InputError(f"{src.name}: cannot infer dims {', '.join(missing)} from the inputs")
        for rule, msg in src.checks:
            if not eval_rule(rule, env):
                raise InputError(msg)
        _check_i32(src, env)
        return env

    def output_shapes(self, dims: dict) -> dict:
        return {s.name: tuple(eval_rule(r, dims) for r in s.shape)
                for s in self.source.tensors if s.role == "output"}

    def allocate_outputs(self, inputs: dict, dims: dict, device=None) -> dict:
        """Fresh output tensors (shapes from the rules; scatter targets start as copies)."""
        out = {}
        dev = device or next((t.device for t in inputs.values() if isinstance(t, torch.Tensor)),
                             torch.device("cpu"))
        shapes = self.output_shapes(dims)
        for spec in self.source.tensors:
            if spec.role == "output":
                out[spec.name] = torch.empty(shapes[spec.name],
                                             dtype=qdtype(spec.dtype).torch_dtype(), device=dev)
        return out

    # ------------------------------------------------------------------ launch
    def launch(self, inputs: dict, outputs: dict, dims: Optional[dict] = None,
               config: Optional[TritonConfig] = None, interpret: Optional[bool] = None) -> dict:
        """Run the kernel; ``outputs`` (by output name) are written in place and returned."""
        run = self.prepare(inputs, outputs, dims, config, interpret)
        if run is not None:
            run()
        return outputs

    def prepare(self, inputs: dict, outputs: dict, dims: Optional[dict] = None,
                config: Optional[TritonConfig] = None, interpret: Optional[bool] = None):
        """Check and bind everything (and initialise the outputs); return a no-argument
        callable that launches the kernel, or None when the grid is empty. Relaunching it
        reuses the bound tensors (for timing); outputs are not re-initialised."""
        src, cfg = self.source, config or TritonConfig()
        env = self.bind_dims(inputs, dims)
        tensors = {}
        device = None
        for spec in src.tensors:
            t = (inputs if spec.role == "input" else outputs).get(spec.name)
            if spec.role == "output":
                want = self.output_shapes(env)[spec.name]
                if (not isinstance(t, torch.Tensor) or tuple(t.shape) != want
                        or t.dtype != qdtype(spec.dtype).torch_dtype()):
                    raise InputError(f"{spec.name}: output must be a {spec.dtype} tensor of "
                                     f"shape {want}, got {_describe(t)}")
                self._init_output(spec, t, inputs)
                if (t.dim() and t.shape[-1] > 1 and t.stride(-1) != 1) or \
                        (spec.contiguous and not t.is_contiguous()):
                    raise InputError(f"{spec.name}: output must be contiguous in its last dim"
                                     + (" (and dense)" if spec.contiguous else ""))
            elif t.dim() and t.shape[-1] > 1 and t.stride(-1) != 1:
                t = t.contiguous()
            device = device or t.device
            tensors[(spec.role, spec.name)] = t
        if interpret is None:
            interpret = device is None or device.type == "cpu"
        views = {}
        for (role, n), t in tensors.items():
            want = getattr(torch, src.tensor(n, role).view)
            views[(role, n)] = t.view(want) if t.dtype != want else t
        cexpr = self._constexprs(cfg, env, interpret)
        runs = self.runs(env, cexpr)
        if not runs:
            return None
        scalars = {s.name: s for s in src.scalars}
        args = []
        for a in src.args:
            if a.role in ("input", "output"):
                args.append(views[(a.role, a.ref)])
            elif a.role == "workspace":     # zeroed once: the kernel leaves it zeroed
                args.append(torch.zeros(eval_rule(src.workspace, env), dtype=torch.int32,
                                        device=device))
            elif a.role == "dim":
                args.append(int(env[a.ref]))
            elif a.role == "stride":
                args.append(int(tensors[(a.io, a.ref)].stride(a.dim)))
            elif a.role == "scalar":
                args.append(self._scalar(scalars[a.ref], inputs))
            else:
                args.append(cexpr[a.ref])

        def run():
            for fn, grid in runs:
                if interpret:
                    with interpreting(fn) as k:
                        k[grid](*args)
                else:
                    fn[grid](*args, num_warps=cexpr["_warps"], num_stages=cfg.num_stages,
                             enable_fp_fusion=False)
        return run

    def runs(self, env: dict, cexpr: dict) -> list:
        """``[(jit fn, grid)]`` of the kernel's launches at these dims; empty grids dropped."""
        src, runs = self.source, []
        for fn, (_, rule) in zip(self.fns, src.launches):
            grid = [eval_rule(g, {**env, **cexpr}) for g in rule]
            if src.min_programs:
                grid[0] = max(grid[0], src.min_programs)
            if all(g > 0 for g in grid):
                runs.append((fn, tuple(grid)))
        return runs

    def _constexprs(self, cfg: TritonConfig, env: dict, interpret: bool,
                    hip: Optional[bool] = None) -> dict:
        if hip is None:
            hip = _hip_runtime()
        cexpr = {"TILE": cfg.tile}
        blocks = {name: eval_rule(rule, env) for name, rule in self.source.constexprs
                  if name not in ("BLOCK_M", "TILE", "NATIVE")}
        widest = max([v for k, v in blocks.items() if k.startswith("BLOCK")], default=1)
        cexpr["BLOCK_M"] = cfg.rows_per_program(widest, interpret)
        # programs along the rows (None in the interpreter, where launch shapes stay put)
        programs = None if interpret else self._row_programs(env, {**blocks, **cexpr})
        if cfg.block_m is None and programs is not None and programs < SMALL_GRID \
                and cexpr["BLOCK_M"] > 1 and self.source.space != "tile":
            # a small grid (decode sizes): fewer rows per program, about 256 programs
            cexpr["BLOCK_M"] = max(1, cexpr["BLOCK_M"] // _spread(programs))
            programs = self._row_programs(env, {**blocks, **cexpr})
        cexpr["NATIVE"] = not interpret and native_fp8(cfg, cexpr["BLOCK_M"], hip)
        chunks = self._col_chunks(cfg, blocks.get("BLOCK_0", 1), programs)
        if chunks > 1:                  # BLOCK_0 is the only base of a splittable kernel
            blocks["BLOCK_0"] = max(blocks["BLOCK_0"] // chunks, self.source.col_split)
            widest = max([v for k, v in blocks.items() if k.startswith("BLOCK")], default=1)
        cexpr.update(blocks)
        elements = widest * (cfg.tile if "TILE" in dict(self.source.constexprs) else cexpr["BLOCK_M"])
        cexpr["_warps"] = cfg.warps(elements, 64 if hip else 32)
        if cfg.num_warps is None and programs is not None and programs < SMALL_GRID \
                and elements >= 4096 and not hip:
            # fewer programs than a GPU has SMs (decode sizes): each program's latency is
            # the kernel's, so give it the most warps (the autotuner picked 16 at M <= 16
            # for 6 of 8 pipelines on the H200). Not on AMD: untimed there, and 16 waves
            # of 64 lanes would hold 8 elements each (the per-lane work, not the
            # per-element, then dominates the instruction count)
            cexpr["_warps"] = 16
        return cexpr

    def _row_programs(self, env: dict, cexpr: dict) -> int:
        """Programs along grid axis 0 (the rows) at these dims and constexprs."""
        return eval_rule(self.source.grid[0], {**env, **cexpr})

    def _col_chunks(self, cfg: TritonConfig, block: int, programs: Optional[int]) -> int:
        """Programs per row (see ``TritonConfig.col_chunks``); 1 unless the kernel allows it.
        ``block``: BLOCK_0 for whole rows; ``programs``: along the rows (None: interpreter)."""
        if not self.source.col_split:
            return 1
        if cfg.col_chunks is not None:
            return cfg.col_chunks
        if programs is None or programs >= SMALL_GRID:
            return 1
        most = max(1, block // max(1024, self.source.col_split))
        return min(most, _spread(programs))

    @staticmethod
    def _scalar(spec, inputs):
        v = inputs.get(spec.name, spec.default)
        if v is None:
            raise InputError(f"{spec.name}: missing input (expected a {spec.dtype} scalar)")
        if isinstance(v, torch.Tensor):
            v = v.reshape(()).item()
        return float(v) if spec.dtype in ("f32", "bf16", "f16") else int(v)

    @staticmethod
    def _init_output(spec, t: torch.Tensor, inputs: dict) -> None:
        if spec.init is None:
            return
        kind, arg = spec.init
        if kind == "copy":
            src = inputs[arg]
            if src.data_ptr() != t.data_ptr():
                t.copy_(src)

    # ------------------------------------------------------------------ cross-compile
    def compile(self, target: str, dims: Optional[dict] = None,
                config: Optional[TritonConfig] = None, phase: Optional[int] = None) -> dict:
        """Cross-compile for ``target`` (``cuda:sm_90``, ``hip:gfx942``, ``hip:gfx950``) with
        the block constexprs for ``dims`` (default: every symbol 4096). Returns
        ``{stage: asm}`` of kernel function number ``phase`` (see ``source.launches``;
        default: the one the kernel is named after, e.g. not a cache write's slot claims)."""
        from .cross_compile import compile_kernel
        src, cfg = self.source, config or TritonConfig()
        if phase is None:
            phase = [name for name, _ in src.launches].index(src.name)
        env = {s: 4096 for s in src.symbols}
        env.update(dims or {})
        cexpr = self._constexprs(cfg, env, interpret=False, hip=target.startswith("hip"))
        sig = {a.name: a.sig for a in src.args if a.role != "constexpr"}
        consts = {a.name: cexpr[a.ref] for a in src.args if a.role == "constexpr"}
        return compile_kernel(self.fns[phase], sig, consts, target, num_warps=cexpr["_warps"],
                              num_stages=cfg.num_stages)
