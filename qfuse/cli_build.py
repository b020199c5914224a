"""``qfuse build FILE.qp... --target cuda:sm_90 [--target hip:gfx942 ...] -o DIR``."""
from __future__ import annotations

import sys

from .backends.registry import backend_names

__all__ = ["register"]


def cmd_build(args) -> int:
    from .runtime.build import build_bundle
    from .runtime.inputs import parse_shape_arg
    targets = args.target or ["cuda:sm_90"]
    report = build_bundle(args.files, targets, args.out, backend=args.backend,
                          shapes=parse_shape_arg(args.shapes or ""), progress=not args.quiet,
                          tuning=args.tuning)
    print(f"built {len(report.built)} pipeline(s) for {', '.join(targets)} into {args.out}")
    for name, msg in report.failed:
        print(f"FAILED {name}:\n{msg}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} pipeline(s) failed; the others are in the bundle",
              file=sys.stderr)
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("build", help="compile .qp files into a bundle (cross-compiles, no GPU)")
    p.add_argument("files", nargs="+")
    p.add_argument("--target", action="append",
                   help="cuda:sm_90, hip:gfx942, hip:gfx950 (repeatable; default cuda:sm_90)")
    p.add_argument("--backend", default="triton", choices=backend_names())
    p.add_argument("--shapes", default="", help="sizes for the binaries' block constexprs, "
                                                "e.g. N=7168 (others default to 64)")
    p.add_argument("-o", "--out", required=True, help="bundle directory")
    p.add_argument("--tuning", help="autotune table (JSON from QuantPipeline.autotune) to ship")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_build)
