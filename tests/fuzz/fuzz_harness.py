"""What the fuzz tests assert about one input, and how a failure is reported.

``compile_input`` takes a file's bytes through the whole compiler (parse, check, qf
module, every pass, Triton source for each kernel). The contract: it either compiles
or raises a :class:`QfuseError` located in that file (``file:line:col``); anything
else (another exception, an unlocated error) is a finding.

``run_both`` runs an accepted pipeline on the reference backend and on Triton (the CPU
interpreter) with the same random inputs; both must run and agree under
``qfuse.runtime.compare`` (bit-exact, one code step where a norm or an activation
allows it), or both must refuse the inputs with a QfuseError (a call-time check on the
shapes). ``KNOWN_ISSUES`` lists findings whose fix belongs to code this suite does not
own; they are reported, not failed (each has a strict xfail test with its reproducer).
"""
from __future__ import annotations

import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from qfuse.errors import QfuseError

#: Sizes for symbolic dims on the interpreter: tiny, but every stage's rule holds
#: (N a multiple of 32 for mx, even for pack; the KV shapes of ``qfuse.demo``).
SMALL_DIMS = dict(M=3, N=64, K=2, E=3, S=2, N2=64, A=2, B=32, R=4)
KV_DIMS = {
    "kv_copy_bf16": dict(T=3, H=2, D=32, B=2, BS=4, X=8, DX=4),
    "kv_per_token_fp8": dict(T=3, H=2, D=32, B=2, BS=4, X=16, DX=2, BSX=1, S=8),
    "kv_block_fp8": dict(T=3, H=2, D=32, B=2, BS=4, X=16, DX=2),
    "kv_flash_static_fp8": dict(T=3, H=2, D=32, B=2, BS=4),
    "rmsnorm_rope_key_cache": dict(T=3, H=2, D=32, B=2, BS=4, X=8, DX=4, P=8, R=16),
}


@dataclass
class Finding:
    """One input that broke the contract: where it came from and what happened."""
    origin: str              # "seed name / mutant index" or a test name
    stage: str               # "compile" | "run"
    what: str                # one line
    detail: str = ""         # traceback or comparison text
    source: bytes = b""

    def render(self) -> str:
        text = self.source.decode("utf-8", "replace")
        shown = text if len(text) < 1500 else text[:700] + "\n...\n" + text[-700:]
        return (f"--- {self.origin} [{self.stage}] {self.what}\n{shown.rstrip()}\n"
                f"{self.detail.rstrip()}\n")


@dataclass
class Outcome:
    """What compiling one input gave: the pipelines, or the located error, or a finding."""
    pipelines: dict = field(default_factory=dict)
    error: Optional[QfuseError] = None
    finding: Optional[Finding] = None
    seconds: float = 0.0


def compile_input(data: bytes, path: Path, origin: str) -> Outcome:
    """Write ``data`` to ``path`` and compile it (see the module docstring)."""
    from qfuse.dialect.builder import build_module
    from qfuse.dsl import load_file
    from qfuse.passes import run_passes
    from qfuse.runtime.compiler import compile_pipeline
    path.write_bytes(data)
    start = time.perf_counter()
    out = Outcome()
    try:
        pipes = load_file(path)
        if pipes:
            run_passes(build_module(list(pipes.values())), "default")
        for tp in pipes.values():
            compile_pipeline(tp, "triton")
        out.pipelines = pipes
    except QfuseError as err:
        out.error = err
        if not _located_in(err, path):
            out.finding = Finding(origin, "compile", f"QfuseError without a location in the "
                                  f"file: {_first_line(err)}", str(err), data)
    except BaseException as err:          # noqa: BLE001 - every crash is a finding
        if isinstance(err, KeyboardInterrupt):
            raise
        out.finding = Finding(origin, "compile", f"{type(err).__name__}: {_first_line(err)}",
                              _short_traceback(), data)
    out.seconds = time.perf_counter() - start
    return out


def _located_in(err: QfuseError, path: Path) -> bool:
    loc = err.loc
    return (loc is not None and loc.file == str(path) and loc.line >= 1 and loc.col >= 1
            and str(err).startswith(f"{path}:{loc.line}:{loc.col}: error: "))


#: Inputs past this many elements are not run (a mutant may give a dim 2**31).
MAX_RUN_ELEMENTS = 1 << 18


def fits_a_run(tp, dims: dict) -> bool:
    """Whether ``tp``'s inputs at ``dims`` are small enough to run on the interpreter."""
    from qfuse.dialect.types import TensorType
    total = 0
    for p in tp.params:
        t = p.value.type
        if isinstance(t, TensorType):
            size = 1
            for d in t.shape:
                size *= max(d.eval(dims), 0)
            total += size
    return total <= MAX_RUN_ELEMENTS


def dims_for(seed_name: str, tp) -> dict:
    """Symbol sizes for a pipeline grown from ``seed_name`` (unknown symbols get 2)."""
    table = KV_DIMS.get(seed_name) or KV_DIMS.get(tp.name) or SMALL_DIMS
    return {s: table.get(s, SMALL_DIMS.get(s, 2)) for s in tp.symbols()}


def run_both(tp, dims: dict, origin: str, source: bytes = b"", seed: int = 0) -> Optional[Finding]:
    """Run ``tp`` on both CPU backends with the same inputs; a Finding when they break
    the contract, None when they agree (or both refuse the inputs)."""
    from qfuse.runtime.compare import compare_outputs, tolerant_stages
    from qfuse.runtime.inputs import random_inputs
    results = {}
    for backend in ("reference", "triton"):
        try:
            inputs = random_inputs(tp, dims, seed=seed)
            results[backend] = _call(tp, backend, inputs)
        except QfuseError as err:
            results[backend] = err
        except BaseException as err:      # noqa: BLE001
            if isinstance(err, KeyboardInterrupt):
                raise
            return Finding(origin, "run", f"{backend}: {type(err).__name__}: {_first_line(err)}",
                           _short_traceback(), source)
    ref, tri = results["reference"], results["triton"]
    refused = [isinstance(r, QfuseError) for r in (ref, tri)]
    if all(refused):
        return None
    if any(refused):
        who, err = ("reference", ref) if refused[0] else ("triton", tri)
        return Finding(origin, "run", f"only {who} refuses the inputs: {_first_line(err)}",
                       str(err), source)
    tolerant = tolerant_stages(tp)
    ok, text = compare_outputs(tri, ref, tolerant)
    if ok:
        return None
    return Finding(origin, "run", f"backends differ: {text[:200]}",
                   f"{text}\n(norm/silu/gelu tolerance: {'yes' if tolerant else 'no'})", source)


def _call(tp, backend: str, inputs: dict) -> dict:
    from qfuse.runtime.pipeline import QuantPipeline
    fresh = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in inputs.items()}
    return QuantPipeline(tp, backend=backend)(**fresh, _as_dict=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else repr(err))[:240]


def _short_traceback(frames: int = 6) -> str:
    lines = traceback.format_exc().rstrip().splitlines()
    return "\n".join(lines[-2 * frames - 1:])


@dataclass(frozen=True)
class KnownIssue:
    """A finding whose fix belongs to another part of qfuse (named in ``owner``); each
    has a strict xfail test with a minimal reproducer in ``test_known_issues.py``."""
    name: str
    pattern: str             # regex over the finding's "what" and "detail"
    owner: str
    reason: str
    source_pattern: str = ""  # and, when given, over the input's text

    def matches(self, finding: Finding) -> bool:
        if re.search(self.pattern, f"{finding.what}\n{finding.detail}") is None:
            return False
        text = finding.source.decode("utf-8", "replace")
        return not self.source_pattern or re.search(self.source_pattern, text) is not None


# findings whose fix is pending elsewhere (each with a strict-xfail reproducer); none now:
# the earlier ones (derived dims on Triton, float results past a per-stage 4-ulp rule, pack
# of out-of-range stored codes) are fixed and kept as tests in test_fuzz_regressions.py
KNOWN_ISSUES: list = []


def known_issue(finding: Finding) -> Optional[KnownIssue]:
    return next((k for k in KNOWN_ISSUES if k.matches(finding)), None)
