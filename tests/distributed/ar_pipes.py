"""The test pipelines: an all-reduce of tensor-parallel partial sums, then residual add +
RMSNorm + quantisation (fp8 per-token, fp8 1x128 groups, MXFP4), each with a twin that
starts from the reduced tensor (what the reference's all-reduce-then-pipeline runs)."""
from __future__ import annotations

import torch

from qfuse.backends.collective import ordered_sum
from qfuse.dsl import load_source
from qfuse.runtime.pipeline import QuantPipeline

_CHAIN = {
    "fp8": "s = scale(y, fp8_e4m3fn, per_token)\n    q = round(y, s, fp8_e4m3fn)",
    "g128": "s = scale(y, fp8_e4m3fn, per_1x128)\n    q = round(y, s, fp8_e4m3fn)",
    "mxfp4": "s = scale(y, fp4_e2m1, mx)\n    q = pack(round(y, s, fp4_e2m1))",
}
KINDS = tuple(_CHAIN)


#: fp8 per-token keeps the fp32 sum (all_reduce's dtype=f32; its twin takes it as f32),
#: the others round it to bf16 (the default: x's dtype)
SUM_DTYPE = {"fp8": torch.float32, "g128": torch.bfloat16, "mxfp4": torch.bfloat16}
_DSL = {torch.float32: "f32", torch.bfloat16: "bf16"}


def _text(prefix: str, twin: bool) -> str:
    out = []
    for kind, chain in _CHAIN.items():
        dt = _DSL[SUM_DTYPE[kind]]
        xt = dt if twin else "bf16"
        opt = ", dtype=f32" if dt == "f32" else ""
        reduce = "x" if twin else f"all_reduce(x, tp{opt})"
        out.append(f'''
def {prefix}_{kind}(x: {xt}[M, N], res: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y, h = norm({reduce}, w, eps, residual=res)
    {chain}
    return q, s, h
''')
    return "\n".join(out)


SOURCE = _text("ar", False) + _text("post", True)
PROGRAMS = load_source(SOURCE, "tests/distributed/ar_pipes.py")
_PIPES: dict = {}


def pipe(name: str, backend: str) -> QuantPipeline:
    """The pipeline ``name`` on ``backend``, one callable per process."""
    key = (name, backend)
    if key not in _PIPES:
        _PIPES[key] = QuantPipeline(PROGRAMS[name], backend=backend)
    return _PIPES[key]


def rank_inputs(rank: int, m: int = 6, n: int = 200) -> dict:
    """Rank ``rank``'s partial sum x (random bf16; row 1 all zero on every rank; row 2
    large values of alternating sign; row 3 starts 2**25, 1.5, 1.5, ... on ranks 0, 1,
    2: the fp32 sum is 2**25 in rank order, 2**25 + 4 in the reverse one) and the shared
    residual and weight."""
    g = torch.Generator().manual_seed(1000 + rank)
    x = torch.randn(m, n, generator=g) * (1 + rank)
    x[1] = 0
    x[2, ::2] = 3.0e4 * (-1) ** rank
    x[3, 0] = 2.0**25 if rank == 0 else 1.5
    shared = torch.Generator().manual_seed(7)
    res = torch.randn(m, n, generator=shared)
    res[1] = 0
    w = torch.randn(n, generator=shared)
    return {"x": x.bfloat16(), "res": res.bfloat16(), "w": w.bfloat16()}


def expected(world: int, kind: str, backend: str = "reference") -> dict:
    """The reference's all-reduce-then-pipeline: the fp32 rank-order sum of the ranks'
    x rounded to bf16, then the pipeline's twin on ``backend``."""
    parts = [rank_inputs(r) for r in range(world)]
    reduced = ordered_sum([p["x"] for p in parts], SUM_DTYPE[kind])
    q, s, h = pipe(f"post_{kind}", backend)(reduced, parts[0]["res"], parts[0]["w"])
    return {"q": q, "s": s, "h": h}
