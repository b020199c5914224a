"""``dequant(q, s)`` takes its granularity from the ``scale`` call that computed ``s`` in the
same pipeline (as ``round`` does): no ``granularity=`` needed, a contradicting one is an
error at the option, a parameter scale follows round's rule (``f32[1]`` per_tensor, E8M0
mx, anything else needs ``granularity=``). The inherited form gives the bits of the
explicit one and of a torch oracle on both backends (reference, Triton interpreter)."""
from __future__ import annotations

import pytest
import torch

from qfuse.dsl import load_source
from qfuse.errors import DSLTypeError
from qfuse.runtime.pipeline import QuantPipeline

SRC = """
def fq64(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x64)
    return dequant(round(x, s, fp8_e4m3fn), s, dtype=bf16), s

def fq64_explicit(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_1x64)
    return dequant(round(x, s, fp8_e4m3fn), s, granularity=per_1x64, dtype=bf16), s

def fq_tok(x: bf16[M, N]):
    s = scale(x, i8, per_token)
    return dequant(round(x, s, i8), s), s

def fq_tensor(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fnuz, per_tensor)
    return dequant(round(x, s, fp8_e4m3fnuz), s), s
"""
P = load_source(SRC)


def granularities(tp) -> list:
    return [str(c.options["granularity"]) for c in tp.calls if c.stage == "dequant"]


def test_dequant_inherits_the_scale_granularity():
    assert granularities(P["fq64"]) == ["per_1x64"]
    assert granularities(P["fq_tok"]) == ["per_token"]
    assert granularities(P["fq_tensor"]) == ["per_tensor"]
    p1 = load_source("def p(q: fp8_e4m3fn[M, N], s: f32[1]):\n    return dequant(q, s)\n")
    assert granularities(p1["p"]) == ["per_tensor"]


@pytest.mark.parametrize("src,where,message", [
    ("def p(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_1x64)\n"
     "    return dequant(round(x, s, fp8_e4m3fn), s, granularity=per_1x128)\n",
     (3, 60), "granularity=per_1x128 does not match the scale s, computed per_1x64"),
    ("def p(q: fp8_e4m3fn[M, N], s: f32[M, 1]):\n    return dequant(q, s)\n",
     (2, 23), "give granularity= for a static scale (s is f32[M, 1])"),
    ("def p(x: bf16[M, N], q: i8[M, N]):\n    s = scale(x, i8, per_token) * 2.0\n"
     "    return dequant(q, s)\n", (3, 23), "give granularity=: s is not computed by scale"),
])
def test_dequant_granularity_errors(src, where, message):
    with pytest.raises(DSLTypeError) as err:
        load_source(src)
    text = str(err.value)
    assert message in text, text
    assert f":{where[0]}:{where[1]}:" in text, text
    if "static scale" in message:
        assert "e.g. dequant(q, s, granularity=per_token)" in text


def rows(m: int, n: int) -> torch.Tensor:
    """Random rows, an all-zero row, one huge value, subnormals, ties and NaN / inf."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(m, n, generator=g)
    special = torch.zeros(5, n)
    special[1] = torch.randn(n, generator=g) * 1e-3
    special[1, n // 3] = 1e30
    special[2] = torch.finfo(torch.bfloat16).tiny / 4
    special[3, 0::2], special[3, 1::2] = 2.0, -2.0
    special[4] = torch.randn(n, generator=g)
    special[4, 1], special[4, n - 1] = float("nan"), float("inf")
    return torch.cat([x, special]).bfloat16()


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])


def same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape)
    ok = (bits(a) == bits(b)) | (a.float().isnan() & b.float().isnan())
    assert bool(ok.all()), f"{what}: {int((~ok).sum())} differ"


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("m,n", [(6, 200), (1, 64), (3, 7)])
def test_inherited_dequant_bits(backend, m, n):
    """The inherited per_1x64 dequant equals the explicit one and decode(q) * s (the last
    group partial); per_token and per_tensor against the oracle too."""
    x = rows(m, n)
    got, s = QuantPipeline(P["fq64"], backend=backend)(x)
    want, s2 = QuantPipeline(P["fq64_explicit"], backend=backend)(x)
    same(got, want, "explicit granularity")
    same(s, s2, "scales")
    q = torch.clamp(x.float() / s.repeat_interleave(64, -1)[:, :n], -448, 448)
    oracle = (q.to(torch.float8_e4m3fn).float() * s.repeat_interleave(64, -1)[:, :n])
    same(got, oracle.bfloat16(), "decode(q) * s")
    fin = x[:m + 4].float()                               # the NaN / inf row left out
    y, st = QuantPipeline(P["fq_tok"], backend=backend)(x[:m + 4])
    q = torch.nan_to_num(torch.clamp(fin / st, -127, 127)).trunc() + 0.0   # i8 code 0: +0
    same(y, q * st, "per_token: decode(q) * s")
    y, st = QuantPipeline(P["fq_tensor"], backend=backend)(x[:m + 4])
    q = torch.clamp(fin / st, -240, 240).to(torch.float8_e4m3fnuz).float()
    same(y, q * st, "per_tensor: decode(q) * s")
