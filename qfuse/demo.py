"""``make demo``: every example through the whole compiler, then a bundle round trip.

For each ``examples/*.qp`` file it prints the ``qf`` module of the file, then for each
pipeline the kernels after ``qf-fuse`` (with the reason of each boundary), a
reference-backend run on random inputs of the shapes below (interpreting the qf module
read back from MLIR), and the generated Triton kernels run in Triton's interpreter,
compared with the reference. Last, ``qfuse build`` makes a bundle for cuda:sm_90,
hip:gfx942 and hip:gfx950 and ``qfuse.load`` runs it back.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

__all__ = ["main", "DEMO_SHAPES"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

_ROWS = dict(M=4, N=256, E=4, K=2)
DEMO_SHAPES = {
    "fp8.qp": _ROWS,
    "int8.qp": _ROWS,
    "mxfp4.qp": _ROWS,
    "glue.qp": dict(M=4, N=256, S=2, N2=512, A=4, B=64, R=6),
    "kv_copy_bf16": dict(T=6, H=2, D=64, B=4, BS=16, X=8, DX=8),
    "kv_per_token_fp8": dict(T=6, H=2, D=64, B=4, BS=16, X=16, DX=4, BSX=1, S=64),
    "kv_block_fp8": dict(T=6, H=2, D=64, B=4, BS=16, X=16, DX=4),
    "kv_flash_static_fp8": dict(T=6, H=2, D=64, B=4, BS=16),
    "rmsnorm_rope_key_cache": dict(T=6, H=2, D=64, B=4, BS=16, X=8, DX=8, P=32, R=32),
}


def shapes_for(file: str, pipeline: str) -> dict:
    return DEMO_SHAPES.get(pipeline) or DEMO_SHAPES.get(file) or _ROWS


def main(argv=None) -> int:
    from .backends.reference.interpreter import run_pipeline
    from .dialect.builder import build_module
    from .dialect.reader import read_pipelines
    from .dialect.text import print_module
    from .dsl import load_file
    from .errors import QfuseError
    from .passes import run_passes
    from .passes.fuse import describe_kernels
    from .runtime.inputs import random_inputs
    from .runtime.compare import compare_outputs, tolerant_stages
    from .runtime.pipeline import QuantPipeline
    from .runtime.summary import summarize

    console = Console(width=int(os.environ.get("COLUMNS", 110)))
    failures = 0
    for path in sorted(EXAMPLES.glob("*.qp")):
        console.print(Rule(f"[bold]{path.name}"))
        pipes = load_file(str(path))
        module = build_module(list(pipes.values()))
        console.print(f"[dim]# parse -> qf dialect ({len(pipes)} pipelines)[/dim]")
        console.print(print_module(module), markup=False, highlight=False)
        for name, tp in pipes.items():
            console.print(Rule(f"{path.name} :: {name}", style="dim"))
            try:
                fused = run_passes(build_module([tp]), "default")
                kernels = describe_kernels(fused)
                console.print(f"[dim]# qf-fuse: {len(kernels)} kernel(s)[/dim]")
                for k in kernels:
                    console.print("  " + k, markup=False, highlight=False)
                (read,) = read_pipelines(build_module([tp]))
                dims = {k: v for k, v in shapes_for(path.name, name).items()
                        if k in tp.symbols()}
                inputs = random_inputs(tp, dims, seed=0)
                fresh = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in inputs.items()}
                outputs = run_pipeline(read, inputs)
                summarize(tp, inputs, outputs, dims, console=console)
                triton_out = QuantPipeline(tp, backend="triton")(**fresh, _as_dict=True)
                ok, text = compare_outputs(triton_out, outputs, tolerant_stages(tp))
                failures += not ok
                console.print(f"[{'green' if ok else 'red'}]triton (interpreter) vs reference: "
                              f"{text}[/]")
            except QfuseError as e:
                failures += 1
                console.print(f"[red]{e}[/red]")
    failures += bundle_demo(console)
    if failures:
        console.print(f"[red]{failures} pipeline(s) failed[/red]")
    return 1 if failures else 0


def bundle_demo(console) -> int:
    """Build a bundle of two example files for three targets, load it back, run it."""
    import tempfile
    from .backends.reference.interpreter import run_pipeline
    from .runtime.build import build_bundle
    from .runtime.bundle import load
    from .runtime.compare import compare_outputs, tolerant_stages
    from .runtime.inputs import random_inputs
    targets = ["cuda:sm_90", "hip:gfx942", "hip:gfx950"]
    files = [str(EXAMPLES / "fp8.qp"), str(EXAMPLES / "mxfp4.qp")]
    console.print(Rule("[bold]qfuse build: a bundle for " + ", ".join(targets)))
    out = tempfile.mkdtemp(prefix="qfuse-demo-bundle-")
    report = build_bundle(files, targets, out, shapes={"N": 256}, progress=True)
    console.print(f"built {len(report.built)} pipelines into {out}; failed: {report.failed or 'none'}")
    pipes = load(out)                     # torch + triton only
    console.print(f"qfuse.load: {len(pipes)} pipelines; manifest targets "
                  f"{pipes.manifest['targets']}, built by qfuse {pipes.manifest['versions']['qfuse']}")
    failures = len(report.failed)
    for name in ("rmsnorm_per_token_fp8", "mxfp4"):
        qp = pipes[name]
        inputs = random_inputs(qp.program, {"M": 4, "N": 256}, seed=1)
        want = run_pipeline(qp.program, {k: (v.clone() if hasattr(v, "clone") else v)
                                         for k, v in inputs.items()})
        ok, text = compare_outputs(qp(**inputs, _as_dict=True), want, tolerant_stages(qp.program))
        failures += not ok
        console.print(f"[{'green' if ok else 'red'}]bundle {name} (Triton interpreter) vs "
                      f"reference: {text}[/]")
    return failures


if __name__ == "__main__":
    sys.exit(main())
