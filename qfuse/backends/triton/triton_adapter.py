"""Triton's private and unstable API, used in one place: this module.

qfuse runs on **triton 3.6 .. 3.9** (3.9.0 in the CPU test environment, 3.6.0 on the GPU
machines; 3.8 ran too). Everything else in qfuse uses Triton's public API only:
``@triton.jit``, ``triton.language``, ``kernel[grid](*args, **options)``,
``triton.testing``. What this module reaches beyond it, and why:

launching (``launch/``)
  * ``fn[grid](*args, **options)`` returns the ``CompiledKernel`` it launched (None while
    an asynchronous compile is pending): :func:`launch_jit`;
  * the compiled kernel's own launcher, the call ``JITFunction.run`` ends with::

        kernel.run(gx, gy, gz, stream, kernel.function, kernel.packed_metadata,
                   launch_metadata, launch_enter_hook, launch_exit_hook, *args)

    (``CudaLauncher`` / ``HIPLauncher.__call__``): :func:`direct_launcher` binds it to a
    grid, so a re-launch skips the jit's argument specialisation and cache lookup;
  * ``triton.runtime.driver.active.get_current_device()`` / ``get_current_stream(dev)``:
    :func:`current_device`, :func:`current_stream`;
  * ``triton.knobs.runtime.launch_enter_hook`` / ``launch_exit_hook`` (a ``HookChain``
    whose ``calls`` are the hooks; None before 3.6): :func:`hooks_active` (a profiler's
    hooks send every launch through the jit).

the CPU interpreter
  * ``triton.runtime.interpreter.InterpretedFunction`` and ``JITFunction.__call__`` (a
    device function called from interpreted code) and the interpreter's patches of
    ``triton.language``: :func:`interpreting`, :func:`interpret` (the one interpreter shim);
  * ``TensorHandle`` (an interpreter tensor's handle) and ``_interpreter.fma_fp32`` (a
    one-rounding fma, 3.8+): :func:`is_interpreter_tensor`, :func:`interpreter_fma_is_exact`.

cross-compiling (``launch/cross_compile.py``)
  * ``triton.compiler.ASTSource(fn, signature, constexprs, attrs)``,
    ``triton.backends.compiler.GPUTarget(backend, arch, warp_size)`` and
    ``triton.compile(src, target=, options=).asm``: :func:`compile_for`, :data:`GPUTarget`.

device code at trace time (``numerics_trace.py``)
  * ``triton.runtime.jit.constexpr_function``: :data:`constexpr_function`;
  * a function marked ``__triton_builtin__`` is called by the code generator with
    ``_semantic`` (None in the interpreter) and skipped by the jit's dependency hasher;
    ``_semantic.builder.options.arch`` is the compile target: :func:`builtin`,
    :func:`target_arch`.

:func:`api_problems` checks the installed Triton for every one of these (names,
signatures, the launcher call's argument order) without a GPU;
tests/backends/triton/test_triton_adapter.py runs it, the interpreter path, and on a GPU
a launch through :func:`direct_launcher`.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import sys
import threading

import triton
from triton.backends.compiler import GPUTarget
from triton.runtime.jit import JITFunction, constexpr_function

__all__ = ["SUPPORTED", "version", "version_text", "api_problems", "launch_jit", "direct_launcher",
           "current_device", "current_stream", "hooks_active", "interpreting", "interpret",
           "is_interpreter_tensor", "interpreter_fma_is_exact", "compile_for", "GPUTarget",
           "constexpr_function", "builtin", "target_arch"]

SUPPORTED = ((3, 6), (3, 9))        # (major, minor), both ends included


def version() -> tuple:
    """(major, minor) of the installed triton."""
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


def version_text() -> str:
    """The installed triton's full version string (part of the backend's cache key)."""
    return triton.__version__


# ---------------------------------------------------------------- launching
def launch_jit(fn, grid, args, options: dict):
    """``fn[grid](*args, **options)``: launch through the jit (compiling on first use);
    the ``CompiledKernel`` it ran, for :func:`direct_launcher` (None if there is none)."""
    return fn[grid](*args, **options)


def direct_launcher(kernel, grid):
    """``launch(stream, args)`` running the compiled ``kernel`` (from :func:`launch_jit`)
    on ``grid`` with the argument list ``args`` through its own launcher, without launch
    hooks; None if this Triton's compiled kernels do not have the attributes it needs
    (then keep launching through the jit)."""
    try:
        run, function, metadata = kernel.run, kernel.function, kernel.packed_metadata
    except Exception:                       # noqa: BLE001 (another triton layout)
        return None
    gx, gy, gz = (tuple(grid) + (1, 1))[:3]

    def launch(stream, args):
        run(gx, gy, gz, stream, function, metadata, None, None, None, *args)

    return launch


@functools.lru_cache(maxsize=None)
def _driver_config():
    from triton.runtime import driver
    return driver


def current_device() -> int:
    """The device index Triton launches on (the current CUDA/HIP device)."""
    return _driver_config().active.get_current_device()


def current_stream(device: int) -> int:
    """The raw handle of ``device``'s current stream."""
    return _driver_config().active.get_current_stream(device)


def _hook_active(hook) -> bool:
    """A launch hook that would do something: not None and, for triton's ``HookChain``
    (3.6+: the knob is a chain, never None), with hooks added."""
    return hook is not None and bool(getattr(hook, "calls", True))


@functools.lru_cache(maxsize=None)
def _runtime_knobs():
    try:
        from triton import knobs
    except ImportError:                     # pragma: no cover (triton < 3.4)
        return None
    return knobs.runtime


def hooks_active() -> bool:
    """Whether a launch enter/exit hook is set (or this Triton cannot say)."""
    rt = _runtime_knobs()
    return rt is None or _hook_active(rt.launch_enter_hook) or _hook_active(rt.launch_exit_hook)


# ---------------------------------------------------------------- the interpreter
_INTERPRETER = threading.RLock()    # the shim patches process-wide state: one run at a time
_MISSING = object()


def _py_fn(fn):
    """The plain Python function under a JITFunction / InterpretedFunction."""
    while hasattr(fn, "fn"):
        fn = fn.fn
    return fn


def _prepare() -> None:
    # imports that triton performs lazily on the first launch (gluon checks the
    # tl.standard functions): do them before the interpreter patches triton.language
    for mod in ("triton.experimental.gluon",):
        with contextlib.suppress(Exception):
            importlib.import_module(mod)


def _language_objects() -> list:
    """Every ``triton.language`` module loaded, and the classes of ``tl.core``: what the
    interpreter patches while it runs."""
    import triton.language as tl
    objs = [m for n, m in list(sys.modules.items())
            if m is not None and (n == "triton.language" or n.startswith("triton.language."))]
    objs += [c for _, c in inspect.getmembers(tl.core, inspect.isclass)
             if c.__module__.startswith("triton.language")]
    return objs


def _language_snapshot() -> list:
    return [(o, dict(vars(o))) for o in _language_objects()]


def _language_restore(saved: list) -> None:
    """Undo the interpreter's patches of triton.language. A nested device call patches
    ``tl.core`` (reached through tl.standard's globals) and never restores it, which would
    break a later cross-compilation in this process. Names the interpreter added to a
    module's globals stay (its cached rewritten functions use them); names added to
    classes go."""
    for obj, before in saved:
        now = vars(obj)
        if isinstance(obj, type):
            for key in [k for k in now if k not in before]:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(obj, key)
        for key, val in before.items():
            if now.get(key, _MISSING) is not val:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(obj, key, val)


@contextlib.contextmanager
def interpreting(kernel):
    """``with interpreting(k) as ik: ik[grid](*args)``: run the ``@triton.jit`` kernel
    ``k`` on CPU tensors in the Triton interpreter, in this process, whatever
    ``TRITON_INTERPRET`` was when it was decorated. While active, a device function called
    from interpreted code (a ``qf_*`` helper, ``tl.sum``, ``tl.max``: jit functions too)
    runs as an ``InterpretedFunction`` twin, as under ``TRITON_INTERPRET=1`` (function
    identities are kept, so the interpreter's numpy fast paths for reductions apply);
    afterwards ``triton.language`` is as it was, so the process can compile for a GPU.
    Runs are serialised (the patches are process-wide)."""
    from triton.runtime.interpreter import InterpretedFunction
    _prepare()
    with _INTERPRETER:
        twins = {}
        original = JITFunction.__call__

        def device_call(self, *args, **kwargs):
            twin = twins.get(self.fn)
            if twin is None:
                twin = twins[self.fn] = InterpretedFunction(self.fn)
            return twin(*args, **kwargs)

        saved = _language_snapshot()
        JITFunction.__call__ = device_call
        try:
            yield kernel if isinstance(kernel, InterpretedFunction) else \
                InterpretedFunction(_py_fn(kernel))
        finally:
            JITFunction.__call__ = original
            _language_restore(saved)


class _Interpreted:

    def __init__(self, fn):
        self.fn = fn

    def __getitem__(self, grid):

        def launch(*args, **kwargs):
            with interpreting(self.fn) as k:
                return k[grid](*args, **kwargs)

        return launch


def interpret(fn):
    """``interpret(k)[grid](*args, **constexprs)``: :func:`interpreting` as a launcher
    (about 5 ms per program: keep grids small)."""
    return _Interpreted(fn)


@constexpr_function
def _never(x):      # a constexpr_function, to check how this Triton calls one
    return x


def _probe(x):      # a function to wrap, to check JITFunction
    return x


def is_interpreter_tensor(x) -> bool:
    """Whether ``x`` is a tensor of the interpreter (a numpy handle), not of the IR."""
    from triton.runtime.interpreter import TensorHandle
    return isinstance(getattr(x, "handle", None), TensorHandle)


def interpreter_fma_is_exact() -> bool:
    """Whether the interpreter's ``tl.fma`` rounds once (3.8+); older ones multiply, round
    and add."""
    from triton.runtime import interpreter
    return hasattr(getattr(interpreter, "_interpreter", None), "fma_fp32")


# ---------------------------------------------------------------- cross-compiling
@contextlib.contextmanager
def _jit_globals(fn):
    """For a kernel decorated under TRITON_INTERPRET=1: every InterpretedFunction
    reachable from its globals (and triton.language's) is a JITFunction while this is
    active (the code generator needs those); restored on exit."""
    from triton.runtime.interpreter import InterpretedFunction
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
            elif inspect.ismodule(val) and val.__name__.startswith("triton.language"):
                visit(val.__dict__)

    visit(_py_fn(fn).__globals__)
    try:
        yield
    finally:
        for g, name, val in reversed(undo):
            g[name] = val


def jit_function(fn) -> JITFunction:
    """``fn`` as a JITFunction (one decorated under TRITON_INTERPRET=1 is an
    InterpretedFunction: the same Python function, wrapped anew)."""
    return fn if isinstance(fn, JITFunction) else JITFunction(_py_fn(fn))


def compile_for(fn, signature: dict, constexprs: dict, attrs: dict, target: GPUTarget,
                options: dict) -> dict:
    """``triton.compile`` of the JITFunction ``fn`` (see :func:`jit_function`) for
    ``target``; ``signature`` names every argument (``'constexpr'`` for those in
    ``constexprs``). Returns ``{stage: asm text or bytes}``."""
    from triton.compiler import ASTSource
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    with _jit_globals(fn):
        return dict(triton.compile(src, target=target, options=options).asm)


# ---------------------------------------------------------------- device code
def builtin(fn):
    """Mark ``fn`` a builtin: the code generator calls it with ``_semantic`` (None from the
    interpreter), and the jit's dependency hasher skips it. (``@tl.core.builtin`` would
    refuse the interpreter's call.)"""
    setattr(fn, "__triton_builtin__", True)
    return fn


def target_arch(_semantic) -> str:
    """The compile target's arch string (``sm90``, ``gfx942``); "" in the interpreter."""
    return "" if _semantic is None else str(getattr(_semantic.builder.options, "arch", "") or "")


# ---------------------------------------------------------------- the check
def api_problems() -> list:
    """What the installed Triton lacks of the API above (empty: everything is there).
    Needs no GPU: classes, signatures and the jit's own launcher call are inspected."""
    import ast
    import textwrap
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    need(SUPPORTED[0] <= version() <= SUPPORTED[1],
         f"triton {triton.__version__} is outside {SUPPORTED[0]} .. {SUPPORTED[1]}")
    # the launcher call: JITFunction.run ends with kernel.run(<9 arguments>, *args)
    tree = ast.parse(textwrap.dedent(inspect.getsource(JITFunction.run)))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "run"
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "kernel"]
    args = [ast.unparse(a) for a in calls[0].args] if calls else []
    need(len(args) == 10 and args[4:6] == ["kernel.function", "kernel.packed_metadata"]
         and args[7:9] == ["knobs.runtime.launch_enter_hook", "knobs.runtime.launch_exit_hook"]
         and args[9].startswith("*"),
         f"JITFunction.run launches as kernel.run({', '.join(args)}), not as "
         "kernel.run(gx, gy, gz, stream, kernel.function, kernel.packed_metadata, "
         "launch_metadata, enter_hook, exit_hook, *args)")
    from triton.compiler.compiler import CompiledKernel
    need(isinstance(inspect.getattr_static(CompiledKernel, "run", None), property),
         "CompiledKernel.run is not a property")
    source = inspect.getsource(CompiledKernel)
    need("self.packed_metadata =" in source and "self.function" in source,
         "CompiledKernel sets no packed_metadata / function")
    for backend, cls in (("nvidia", "CudaLauncher"), ("amd", "HIPLauncher")):
        try:
            launcher = getattr(importlib.import_module(f"triton.backends.{backend}.driver"), cls)
        except ImportError:                 # this wheel or machine has no such backend
            continue
        # 3.9 names all nine leading arguments; 3.6 names the grid, stream and function
        # and takes the metadata, hooks and kernel arguments as *args: the same call
        params = list(inspect.signature(launcher.__call__).parameters)[1:]
        need(len(params) in (6, 10) and params[:5] == ["gridX", "gridY", "gridZ", "stream",
                                                        "function"]
             and inspect.signature(launcher.__call__).parameters[params[-1]].kind
             is inspect.Parameter.VAR_POSITIONAL,
             f"{cls}.__call__{tuple(params)} is not (gridX, gridY, gridZ, stream, function, "
             f"..., *args)")
    from triton.runtime import driver
    need(hasattr(type(driver), "active") or "active" in vars(driver),   # without touching it
         "triton.runtime.driver has no active driver")
    from triton.backends.driver import GPUDriver
    need("get_current_device" in inspect.getsource(GPUDriver)
         and "get_current_stream" in inspect.getsource(GPUDriver),
         "GPUDriver has no get_current_device / get_current_stream")
    rt = _runtime_knobs()
    need(rt is not None and hasattr(rt, "launch_enter_hook") and hasattr(rt, "launch_exit_hook"),
         "triton.knobs.runtime has no launch_enter_hook / launch_exit_hook")
    from triton.runtime import interpreter
    need(all(hasattr(interpreter, n) for n in ("InterpretedFunction", "TensorHandle")),
         "triton.runtime.interpreter has no InterpretedFunction / TensorHandle")
    need("fn" in inspect.signature(interpreter.InterpretedFunction.__init__).parameters,
         "InterpretedFunction(fn) is not its constructor")
    need(JITFunction(_probe).arg_names == ["x"], "JITFunction(fn).arg_names is not the arguments")
    from triton.compiler import ASTSource
    need(list(inspect.signature(ASTSource.__init__).parameters)[1:5]
         == ["fn", "signature", "constexprs", "attrs"],
         "ASTSource is not ASTSource(fn, signature, constexprs, attrs)")
    need([f for f in ("backend", "arch", "warp_size") if hasattr(GPUTarget("cuda", 90, 32), f)]
         == ["backend", "arch", "warp_size"], "GPUTarget is not GPUTarget(backend, arch, warp_size)")
    need("target" in inspect.signature(triton.compile).parameters
         and "options" in inspect.signature(triton.compile).parameters,
         "triton.compile takes no target= / options=")
    need(_never(3) == 3, "constexpr_function does not call through from Python")
    from triton.language import core
    need(getattr(core, "TRITON_BUILTIN", "__triton_builtin__") == "__triton_builtin__",
         "builtins are not marked __triton_builtin__")
    from triton.compiler import code_generator
    need("_semantic=self.semantic" in inspect.getsource(code_generator),
         "the code generator does not pass _semantic to builtins")
    from triton.language import semantic
    need("self.builder = builder" in inspect.getsource(semantic),
         "the semantic keeps no builder (its options.arch is the compile target)")
    return problems
