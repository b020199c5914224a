"""Cross-compile Triton kernels without a GPU, and run them in the CPU interpreter.

Works on triton 3.6 .. 3.9: all of them have `ASTSource(fn, signature, constexprs, attrs)`
(signature keys are argument names; constexprs keyed by name or `(index,)`) and
`triton.compile(src, target=GPUTarget(...), options={...})`; run here on 3.6, 3.8 and 3.9.

* `parse_target("cuda:sm_90" | "hip:gfx942" | "hip:gfx950")` -> `GPUTarget`.
* `compile_kernel(jit_fn, signature, constexprs, target, ...)` -> `{stage: asm}` with the
  stages `source, ttir, ttgir, llir` and `ptx, cubin` (cuda) or `amdgcn, hsaco` (hip).
* `interpret(jit_fn)[grid](*args)` runs the same `@triton.jit` kernel in the interpreter in
  this process, whatever `TRITON_INTERPRET` was at import time: while it runs, calls to
  nested `@triton.jit` functions (`qf_*`, and `tl.sum`, `tl.max`, ... which are jit
  functions of triton.language) go to interpreted twins. `compile_kernel` does the reverse
  for a kernel decorated under `TRITON_INTERPRET=1`. Neither is thread safe.
"""
import contextlib
import inspect
import re
import types

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

__all__ = ["parse_target", "compile_kernel", "interpret", "triton_version"]

_MISSING = object()
_TARGET_RE = re.compile(r"^(cuda):(?:sm_)?(\d+)a?$|^(hip):(gfx[0-9a-f]+)$")


def triton_version():
    """(major, minor) of the installed triton."""
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


def parse_target(spec):
    """'cuda:sm_90' -> GPUTarget('cuda', 90, 32); 'hip:gfx942' -> GPUTarget('hip', 'gfx942', 64).

    HIP warp size: 64 for gfx9 (CDNA), 32 for gfx10+ (RDNA)."""
    if isinstance(spec, GPUTarget):
        return spec
    m = _TARGET_RE.match(spec.strip())
    if m is None:
        raise ValueError(f"bad target {spec!r}: expected 'cuda:sm_NN' or 'hip:gfxNNN'")
    if m.group(1):
        return GPUTarget("cuda", int(m.group(2)), 32)
    arch = m.group(4)
    return GPUTarget("hip", arch, 64 if arch.startswith("gfx9") else 32)


def _py_fn(fn):
    """The plain Python function under a JITFunction / InterpretedFunction."""
    while hasattr(fn, "fn"):
        fn = fn.fn
    return fn


@contextlib.contextmanager
def _jit_calls_interpreted():
    """While active, calling a JITFunction (a nested `qf_*` helper, `tl.sum`, ...) from
    interpreted code runs its InterpretedFunction twin, as under TRITON_INTERPRET=1.
    Patches the JITFunction class (not thread safe); function identities are kept, so the
    interpreter's numpy fast paths for tl.sum / tl.max still apply."""
    original = JITFunction.__call__
    twins = {}

    def call(self, *args, **kwargs):
        twin = twins.get(self.fn)
        if twin is None:
            twin = twins[self.fn] = InterpretedFunction(self.fn)
        return twin(*args, **kwargs)

    saved = _lang_snapshot()
    JITFunction.__call__ = call
    try:
        yield
    finally:
        JITFunction.__call__ = original
        _lang_restore(saved)


def _lang_objects():
    import triton.language as tl
    classes = [c for _, c in inspect.getmembers(tl.core, inspect.isclass)
               if c.__module__.startswith("triton.language")]
    return [tl, tl.core, tl.math, tl.standard], classes


def _lang_snapshot():
    modules, classes = _lang_objects()
    return [(o, dict(vars(o)), isinstance(o, type)) for o in modules + classes]


def _lang_restore(saved):
    """Undo the interpreter's patches of triton.language. A nested device call patches
    tl.core (reached through tl.standard's globals) and never restores it, which would
    break a later cross-compilation in this process. Keys the interpreter added to module
    globals stay (its rewritten functions use them); keys added to classes go."""
    for obj, before, is_class in saved:
        now = vars(obj)
        for key in [k for k in now if k not in before] if is_class else []:
            delattr(obj, key)
        for key, val in before.items():
            if now.get(key, _MISSING) is not val:
                setattr(obj, key, val)


@contextlib.contextmanager
def _jit_globals_restored(fn):
    """For a kernel decorated under TRITON_INTERPRET=1: replace every InterpretedFunction
    reachable from its globals (and triton.language's) by a JITFunction; restore on exit."""
    undo, seen = [], set()

    def visit(g):
        if id(g) in seen:
            return
        seen.add(id(g))
        for name, val in list(g.items()):
            if isinstance(val, InterpretedFunction):
                g[name] = JITFunction(_py_fn(val))
                undo.append((g, name, val))
                visit(_py_fn(val).__globals__)
            elif isinstance(val, types.ModuleType) and val.__name__.startswith("triton.language"):
                visit(val.__dict__)

    visit(_py_fn(fn).__globals__)
    try:
        yield
    finally:
        for g, name, val in reversed(undo):
            g[name] = val


class _Interpreted:

    def __init__(self, fn):
        self.kernel = InterpretedFunction(_py_fn(fn))

    def __getitem__(self, grid):

        def launch(*args, **kwargs):
            with _jit_calls_interpreted():
                return self.kernel[grid](*args, **kwargs)

        return launch


def interpret(jit_fn):
    """`interpret(k)[grid](*args, **constexprs)`: run `k` on CPU torch tensors in the
    Triton interpreter (about 5 ms per program: keep grids small)."""
    return _Interpreted(jit_fn)


def compile_kernel(jit_fn, signature, constexprs, target, num_warps=4, num_stages=None,
                   enable_fp_fusion=False, attrs=None):
    """Cross-compile `jit_fn` for `target` (a GPUTarget or a parse_target string).

    signature: {arg name: type string ('*fp32', '*bf16', '*u8', '*fp8e4nv', 'i32', 'fp32',
    ...)}; constexprs: {arg name: value} (listed as 'constexpr' in the signature for you).
    attrs: optional {(arg index,): [['tt.divisibility', 16]]}. FP fusion is off by default
    (the semantics forbid FMA contraction). Returns {stage: asm text or bytes}."""
    target = parse_target(target)
    pyfn = _py_fn(jit_fn)
    interp_built = not isinstance(jit_fn, JITFunction)
    fn = JITFunction(pyfn) if interp_built else jit_fn
    constexprs = dict(constexprs or {})
    names = fn.arg_names
    unknown = (set(signature) | set(constexprs)) - set(names)
    if unknown:
        raise ValueError(f"{pyfn.__name__}: unknown arguments {sorted(unknown)}")
    sig = {}
    for name in names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in signature:
            sig[name] = signature[name]
        else:
            raise ValueError(f"{pyfn.__name__}: argument {name!r} has neither a type nor a constexpr value")
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs or {})
    options = {"num_warps": num_warps, "enable_fp_fusion": enable_fp_fusion}
    if num_stages is not None:
        options["num_stages"] = num_stages
    swap = _jit_globals_restored(fn) if interp_built else contextlib.nullcontext()
    with swap:
        kernel = triton.compile(src, target=target, options=options)
    return dict(kernel.asm)
