"""The compile cache: keys cover what changes the binary; warm entries skip the passes."""
from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from qfuse.dsl import load_source
from qfuse.runtime.cache import KernelCache
from qfuse.runtime.compiler import cached_compile, compile_key, qfuse_fingerprint

ROOT = Path(__file__).resolve().parents[2]
SRC = """
def p(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0={mode})
    return pack(round(x, s, fp4_e2m1)), s
"""


def prog(mode="even", text=SRC):
    return load_source(text.format(mode=mode), "k.qp")["p"]


def test_key_changes_with_every_input_and_only_then(monkeypatch):
    base = compile_key(prog(), "triton", "cuda:sm_90")
    reformatted = "# a comment\n\n" + SRC.replace("x: bf16[M, N]", "x:  bf16[M,N]")
    assert compile_key(prog(text=reformatted), "triton", "cuda:sm_90") == base
    assert compile_key(prog("roundup"), "triton", "cuda:sm_90") != base
    assert compile_key(prog(), "reference", "cuda:sm_90") != base
    assert compile_key(prog(), "triton", "hip:gfx942") != base
    monkeypatch.setenv("QFUSE_SOMETHING", "1")
    assert compile_key(prog(), "triton", "cuda:sm_90") != base


WARM = textwrap.dedent("""
    import sys
    import qfuse.passes
    def boom(*a, **k):
        raise SystemExit('passes ran on a warm cache')
    qfuse.passes.run_passes = boom
    from qfuse.dsl import load_source
    from qfuse.runtime.compiler import cached_compile
    from qfuse.runtime.cache import KernelCache
    src = open(sys.argv[2]).read()
    cp = cached_compile(load_source(src, 'k.qp')['p'], 'triton', 'cuda:sm_90', KernelCache(sys.argv[1]))
    print(len(cp.steps))
""")


def test_second_process_uses_the_warm_entry_without_passes(tmp_path):
    src = SRC.format(mode="even")
    cached_compile(load_source(src, "k.qp")["p"], "triton", "cuda:sm_90", KernelCache(tmp_path))
    (tmp_path / "src.qp").write_text(src)
    (tmp_path / "warm.py").write_text(WARM)
    r = subprocess.run([sys.executable, str(tmp_path / "warm.py"), str(tmp_path),
                        str(tmp_path / "src.qp")], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "1"


def _compile_in_process(root: str, mode: str) -> None:
    cached_compile(prog(mode), "triton", "cuda:sm_90", KernelCache(root))


def test_eight_processes_compiling_leave_a_consistent_cache(tmp_path):
    modes = ["even", "even", "even", "even", "floor", "floor", "ceil", "roundup"]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_compile_in_process, args=(str(tmp_path), m)) for m in modes]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    cache = KernelCache(tmp_path)
    assert len(cache.entries()) == 4
    qfuse_fingerprint.cache_clear()      # the children hashed the sources as they are now
    for m in set(modes):
        key = compile_key(prog(m), "triton", "cuda:sm_90")
        assert cache.get(key, "p") is not None
    assert not list(tmp_path.rglob("*.tmp"))


EXAMPLES = sorted((ROOT / "examples").glob("*.qp"))


def test_every_example_survives_the_stored_form_unchanged():
    """What the cache and bundles store reads back as it was written, for every example
    (the reader's checks must not take any real pipeline for damage: a KV block write's
    kernel function is named apart from its step)."""
    from qfuse.dsl import load_file
    from qfuse.runtime.artifact import CompiledPipeline
    from qfuse.runtime.compiler import compile_pipeline
    for path in EXAMPLES:
        for tp in load_file(path).values():
            cp = compile_pipeline(tp, "triton", "any")
            back = CompiledPipeline.loads(cp.dumps().encode(), f"{tp.name}.json", tp.name)
            assert back.dumps() == cp.dumps(), tp.name
