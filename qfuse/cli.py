"""The ``qfuse`` command line.

    qfuse ir FILE.qp [--pipeline NAME] [--emit ast|qfuse|fused|triton] [--print-after-all]
    qfuse ir FILE.qp --emit loops|gpu|rocdl|llvm|amdgcn|ptx [--target hip:gfx942]
    qfuse ir FILE.qp --backend rocdl --print-after-all   # + qf-lower-loops, qf-map-gpu
    qfuse ir FILE.mlir [--emit qfuse|fused|triton]      # resumes after the qfuse stage
    qfuse opt FILE.mlir --passes qf-fuse,qf-legalize     # run passes, print the module
    qfuse run FILE.qp --pipeline NAME --shape M=4,N=256 [--backend reference|triton]

User errors print ``file:line:col``, the source line and a caret, and exit with 1. Any
other exception is a qfuse bug: it prints a short "internal error, please report" line
and exits with 70 (``EX_SOFTWARE``); ``QFUSE_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys

from .backends.registry import backend_names
from .errors import QfuseError

__all__ = ["main"]

EMIT_LADDER = ("ast", "qfuse", "fused", "triton")
#: the ROCDL backend's stages below ``fused`` (qfuse/backends/rocdl/lower.py)
ROCDL_LADDER = ("loops", "gpu", "rocdl", "llvm", "amdgcn", "ptx")


def _select(pipes: dict, name, path: str) -> list:
    if name is None:
        return list(pipes.values())
    if name not in pipes:
        raise QfuseError(f"{path} has no pipeline {name!r}; it has: {', '.join(pipes)}")
    return [pipes[name]]


def cmd_ir(args) -> int:
    if args.file.endswith(".mlir"):
        return _ir_of_mlir(args)
    from .dsl import load_file, parse_file
    if args.emit == "ast":
        mod = parse_file(args.file)
        for p in mod.pipelines:
            if args.pipeline in (None, p.name):
                print(p)
        return 0
    from .dialect.builder import build_module
    tps = _select(load_file(args.file), args.pipeline, args.file)
    return _emit(build_module(tps), args, "qf-build (DSL -> qf)")


def _ir_of_mlir(args) -> int:
    """A ``.mlir`` file holds the ``qf`` module (or a fused one): the ladder resumes
    after the ``qfuse`` stage."""
    from .cli_opt import parse_mlir, read_text
    if args.emit == "ast" or args.pipeline is not None:
        raise QfuseError(f"{args.file}: a .mlir file has no DSL source: --emit ast and "
                         f"--pipeline apply to .qp files")
    return _emit(parse_mlir(read_text(args.file), args.file), args, "parse (.mlir -> qf)")


def _emit(module, args, origin: str) -> int:
    """Print ``module`` (the qf dialect) or run the passes and print what ``--emit`` asks
    (``origin``: the step that made the module, for ``--print-after-all``)."""
    from .dialect.text import print_module
    if args.emit == "qfuse" and not args.print_after_all:
        print(print_module(module, debug_info=args.debug_info))
        return 0
    from .passes import run_passes
    if args.print_after_all:
        print(f"// -----// IR Dump After {origin} //----- //")
        print(print_module(module, debug_info=args.debug_info))
    module = run_passes(module, args.passes, print_after_all=args.print_after_all)
    if args.emit == "fused" and not args.print_after_all:
        print(print_module(module, debug_info=args.debug_info))
    if args.emit in ROCDL_LADDER or args.backend == "rocdl" and args.print_after_all:
        return _emit_rocdl(module, args)
    if args.emit == "triton":
        from .runtime.compiler import compile_module_sources
        for name, src in compile_module_sources(module).items():
            print(f"# ===== {name} =====")
            print(src)
    return 0


def _emit_rocdl(module, args) -> int:
    """The ROCDL backend's ladder below the fused ``module``, down to ``--emit``: the
    lowering passes (``qf-lower-loops``: ``loops``; ``qf-map-gpu{target=T}``: ``gpu``),
    each on its own copy of the fused module, then for every kernel the backend's
    conversions (``rocdl`` / ``nvvm``, ``llvm``, ``amdgcn`` / ``ptx``) from the passes'
    output. With ``--print-after-all`` every pass and stage on the way is printed."""
    from .backends.base import parse_target
    from .backends.registry import get_backend
    from .backends.rocdl.lower import emit
    from .dialect.encoding import KERNEL_ATTR, SPACE_ATTR
    from .dialect.mlir import ir
    from .dialect.reader import read_function
    from .dialect.text import print_module
    from .runtime.lowering import collect, run_lowering
    pa = args.print_after_all
    target = parse_target(args.target or ("cuda:sm_90" if args.emit == "ptx" else "hip:gfx942"))
    backend = get_backend("rocdl")
    backend.check_target(target)
    last = ROCDL_LADDER.index(args.emit) if args.emit in ROCDL_LADDER else 1
    loops = run_lowering(module, print_after_all=pa)
    if args.emit == "loops" and not pa:
        print(print_module(loops, debug_info=args.debug_info))
    if last < 1:
        return 0
    gpu = run_lowering(module, str(target), print_after_all=pa)
    if args.emit == "gpu" and not pa:
        print(print_module(gpu, debug_info=args.debug_info))
    if last < 2:
        return 0
    lowered = collect(loops, {str(target): gpu})
    stages = ["rocdl", "llvm"] if pa else []
    stages = stages + [args.emit] if args.emit not in stages else stages
    for op in module.body.operations:
        if op.operation.name != "func.func" or KERNEL_ATTR not in op.operation.attributes:
            continue
        space = ir.StringAttr(op.operation.attributes[SPACE_ATTR]).value
        name = ir.StringAttr(op.operation.attributes["sym_name"]).value
        kernel = backend.compile_kernel(read_function(op), space, target,
                                        lowered=lowered.get(name))
        if kernel is None:           # a host step (all_reduce): nothing is lowered
            continue
        for stage in stages:
            label = "nvvm" if stage == "rocdl" and target.platform == "cuda" else stage
            print(f"// -----// {kernel.name}: {label} ({target}) //----- //")
            print(emit(kernel, stage, target))
    return 0


def cmd_run(args) -> int:
    from .dsl import load_file
    from .runtime.inputs import parse_shape_arg, random_inputs
    from .runtime.summary import summarize
    tps = _select(load_file(args.file), args.pipeline, args.file)
    dims = parse_shape_arg(args.shape or "")
    for tp in tps:
        inputs = random_inputs(tp, dims, seed=args.seed, device=args.device)
        from .runtime.pipeline import QuantPipeline
        outputs = QuantPipeline(tp, backend=args.backend)(**inputs, _as_dict=True)
        summarize(tp, inputs, outputs, dims)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qfuse", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ir = sub.add_parser("ir", help="print the MLIR of a .qp (or .mlir) file")
    ir.add_argument("file")
    ir.add_argument("--pipeline", help="only this pipeline of the file")
    ir.add_argument("--emit", choices=EMIT_LADDER + ROCDL_LADDER, default="qfuse",
                    help="stop after this stage (default: the qf dialect); loops .. ptx are "
                         "the rocdl backend's")
    ir.add_argument("--target", help="for the rocdl stages: hip:gfx942 (default), hip:gfx950, "
                                     "cuda:sm_90 (ptx's default)")
    ir.add_argument("--backend", choices=("rocdl",), help="with --print-after-all: the rocdl "
                    "backend's lowering passes too (qf-lower-loops, qf-map-gpu); implied by "
                    "--emit loops .. ptx")
    ir.add_argument("--passes", default="default", help="pass pipeline or comma-separated passes")
    ir.add_argument("--print-after-all", action="store_true", help="print the IR after every pass")
    ir.add_argument("--debug-info", action="store_true", help="print locations")
    ir.set_defaults(fn=cmd_ir)
    run = sub.add_parser("run", help="run a pipeline on random input and summarise the outputs")
    run.add_argument("file")
    run.add_argument("--pipeline", help="pipeline name (default: all pipelines of the file)")
    run.add_argument("--shape", default="", help="symbolic dims, e.g. M=4,N=256")
    run.add_argument("--backend", default="reference", choices=backend_names())
    run.add_argument("--device", default="cpu")
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(fn=cmd_run)
    for extra in ("opt", "build", "cache", "bench"):
        try:
            mod = __import__(f"qfuse.cli_{extra}", fromlist=["register"])
        except ImportError:
            continue
        mod.register(sub)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:            # every later argument belongs to benchmarks/bench.py
        from .cli_bench import run_bench
        return _guard(lambda: run_bench(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guard(lambda: args.fn(args))


EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 70         # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130


def _guard(fn) -> int:
    """Run a command; the one place that turns every exception into a message and an
    exit status (no traceback unless QFUSE_DEBUG=1)."""
    try:
        return fn()
    except BrokenPipeError:              # `qfuse ir ... | head`: the reader left early
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("qfuse: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except QfuseError as e:
        if _debug():
            raise
        print(str(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:               # noqa: BLE001 - every bug gets the same short report
        if _debug():
            raise
        print(_internal_error(e), file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _debug() -> bool:
    return os.environ.get("QFUSE_DEBUG") == "1"


def _internal_error(err: BaseException) -> str:
    """One line naming the failure, and how to get the traceback for a report."""
    what = f"{type(err).__name__}: {err}".splitlines()[0][:200]
    return (f"qfuse: internal error ({what})\n"
            f"  this is a bug in qfuse, please report it with the input that caused it;\n"
            f"  run again with QFUSE_DEBUG=1 to see the traceback")


if __name__ == "__main__":
    sys.exit(main())
