"""TypedPipelines built by hand (no DSL front end), for the dialect tests.

:class:`PipelineBuilder` resolves options and infers result types with the stage
catalog exactly as the DSL checker does, and gives every value a source location in a
made-up file ``hand.qp`` (one line per statement).
"""
from __future__ import annotations

import re

from qfuse.dialect.stages import STAGES, infer_results, resolve_options
from qfuse.dialect.types import Dim, ScalarType, TensorType, dtype
from qfuse.dsl.typed import ConstInfo, ParamInfo, StageCall, TypedPipeline, Value
from qfuse.errors import SourceLoc

FILE = "hand.qp"


def parse_type(text: str):
    """``"bf16[M, 128]"`` -> TensorType, ``"f32"`` -> ScalarType."""
    m = re.fullmatch(r"(\w+)(?:\[(.*)\])?", text.replace(" ", ""))
    dt = dtype(m.group(1))
    if m.group(2) is None:
        return ScalarType(dt)
    dims = [Dim(int(d)) if d.isdigit() else Dim(d) for d in m.group(2).split(",")]
    return TensorType(dt, tuple(dims))


class PipelineBuilder:
    def __init__(self, name: str, line: int = 1):
        self.name = name
        self.line = line
        self.loc = SourceLoc(FILE, line, 5)
        self.params, self.consts, self.calls = [], [], []
        self.col = 10
        self.producer = {}

    def _next(self) -> SourceLoc:
        self.line += 1
        return SourceLoc(FILE, self.line, 5)

    def param(self, name: str, type_text: str, default=None) -> Value:
        self.col += 10
        v = Value(name, parse_type(type_text), SourceLoc(FILE, self.loc.line, self.col))
        self.params.append(ParamInfo(v, default))
        return v

    def const(self, literal, dt: str = "f32") -> Value:
        v = Value(f"c{len(self.consts)}", ScalarType(dtype(dt)), SourceLoc(FILE, self.line, 30))
        self.consts.append(ConstInfo(v, literal))
        return v

    def call(self, stage: str, names=None, **kw):
        """``call("norm", ("y", "h"), x=x, w=w, eps=eps, residual=r)`` -> Value or tuple."""
        st = STAGES[stage]
        operands = {o.name: kw.pop(o.name, None) for o in st.operands}
        if stage == "round" and "granularity" not in kw:       # as the DSL checker does
            kw["granularity"] = self.producer[operands["s"]].options["granularity"]
        args = {n: v.type for n, v in operands.items() if v is not None}
        options = resolve_options(st, args, kw)
        inferred = infer_results(st, args, options)
        loc = self._next()
        names = [names] if isinstance(names, str) else list(names or [])
        names += [f"t{len(self.calls)}_{i}" for i in range(len(names), len(inferred))]
        results = [Value(n, t, loc) for n, (_, t) in zip(names, inferred)]
        self.calls.append(StageCall(stage, operands, options, results, loc,
                                    [n for n, _ in inferred]))
        self.producer.update({v: self.calls[-1] for v in results})
        return results[0] if len(results) == 1 else tuple(results)

    def ret(self, *values, names=None) -> TypedPipeline:
        return TypedPipeline(self.name, self.params, self.consts, self.calls, list(values),
                             self.loc, list(names or [v.name for v in values]))


# ------------------------------------------------------------------ pipelines
def rmsnorm_per_token_fp8():
    b = PipelineBuilder("rmsnorm_per_token_fp8")
    x, w = b.param("x", "bf16[M, N]"), b.param("w", "bf16[N]")
    eps = b.param("eps", "f32", default=1e-6)
    y = b.call("norm", "y", x=x, w=w, eps=eps)
    s = b.call("scale", "s", x=y, dtype="fp8_e4m3fn", granularity="per_token")
    q = b.call("round", "q", x=y, s=s, dtype="fp8_e4m3fn")
    return b.ret(q, s)


def add_rmsnorm_static():
    b = PipelineBuilder("add_rmsnorm_static", line=10)
    x, res = b.param("x", "bf16[M, 4096]"), b.param("res", "bf16[M, 4096]")
    w, s = b.param("w", "bf16[4096]"), b.param("s", "f32[1]")
    eps = b.const(1e-6)
    y, h = b.call("norm", ("y", "h"), x=x, w=w, eps=eps, residual=res)
    q = b.call("round", "q", x=y, s=s, dtype="fp8_e4m3fn", granularity="per_tensor",
               recip="mul_rcp")
    return b.ret(q, h, names=["q", "residual"])


def moe_smoothquant_i8():
    b = PipelineBuilder("moe_smoothquant_i8", line=20)
    x, ss = b.param("x", "bf16[M, N]"), b.param("smooth_scale", "f32[E, N]")
    ids = b.param("topk_ids", "i32[M, K]")
    h = b.call("smooth", "h", x=x, s=ss, ids=ids)
    s = b.call("scale", "s", x=h, dtype="i8", granularity="per_token")
    q = b.call("round", "q", x=h, s=s, dtype="i8", mode="rne")
    return b.ret(q, s)


def glue_mxfp4():
    b = PipelineBuilder("glue_mxfp4", line=30)
    parts, bias = b.param("partials", "f32[S, M, 2048]"), b.param("bias", "bf16[1024]")
    alpha = b.param("alpha", "f32", default=0.5)
    h = b.call("act_mul", "h", x=b.call("reduce", x=parts), act="silu")
    h = b.call("mul", "h2", a=b.call("add", a=h, b=bias), b=alpha)
    h = b.call("mul", "h3", a=h, b=b.const(0.25))
    h = b.call("gelu", "g", x=b.call("cast", x=h, dtype="bf16"), approx="tanh")
    s = b.call("scale", "s", x=h, dtype="fp4_e2m1", granularity="mx", e8m0="even")
    p = b.call("pack", "p", x=b.call("round", x=h, s=s, dtype="fp4_e2m1"))
    return b.ret(p, b.call("shuffle", "ss", s=s))


def kv_rope_cache():
    b = PipelineBuilder("kv_rope_cache", line=40)
    k, cos = b.param("k", "bf16[T, H, D]"), b.param("cos", "f32[P, R]")
    sin, pos = b.param("sin", "f32[P, R]"), b.param("pos", "i64[T]")
    cache, scales = b.param("k_cache", "fp8_e4m3fn[B, H, DX, BS, 16]"), b.param("k_scales", "f32[H, S]")
    slots, rows = b.param("slots", "i64[T]"), b.param("rows", "i32[R2]")
    kr = b.call("rope", "kr", x=k, cos=cos, sin=sin, pos=pos, style="gptj")
    kc, ks = b.call("cache_write", ("kc", "ks"), x=kr, cache=cache, slots=slots, scales=scales,
                    layout="key", quant="per_token")
    g = b.call("gather", "g", x=b.call("flatten", x=kr), idx=rows, packed_ids=True)
    s = b.call("scale", "s", x=g, dtype="fp8_e4m3fn", granularity="per_1x128")
    return b.ret(kc, ks, b.call("round", "q", x=g, s=s, dtype="fp8_e4m3fn"), s)


ALL = [rmsnorm_per_token_fp8, add_rmsnorm_static, moe_smoothquant_i8, glue_mxfp4, kv_rope_cache]
