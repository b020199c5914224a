"""rope(mrope=chunked|interleaved): positions [3, T], each rotary frequency reading the
row of its section, on the Triton backend (interpreter) and the reference, both against
an fp32 oracle of AITER's torch reference (Qwen2-VL chunked and Qwen3-VL interleaved
sections): neox and gptj pairs, a pass-through tail, positions outside the table in one
row (only the frequencies reading it are NaN)."""
import pytest
import torch

from test_kernels_helpers import assert_bitwise, pipes, run_both


def pipe(style, mrope, h, w):
    src = (f"def r(x: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[3, T]):\n"
           f"    y = rope(x, cos, sin, pos, style={style}, mrope={mrope}, mrope_h={h}, "
           f"mrope_w={w})\n    return y\n")
    return pipes(src, "mrope_test.qp")["r"]


def oracle(x, cos, sin, pos, neox, sections, interleaved):
    """AITER's test reference in fp32 (cos_sin[positions], the sections' rows picked)."""
    p = cos.shape[0]
    ok = (pos >= 0) & (pos < p)
    c = torch.where(ok[..., None], cos[pos.clamp(0, p - 1)], torch.tensor(float("nan")))
    s = torch.where(ok[..., None], sin[pos.clamp(0, p - 1)], torch.tensor(float("nan")))

    def pick(m):                                         # [3, T, R/2] -> [T, R/2]
        if interleaved:
            out = m[0].clone()
            out[..., 1:sections[1] * 3:3] = m[1, ..., 1:sections[1] * 3:3]
            out[..., 2:sections[2] * 3:3] = m[2, ..., 2:sections[2] * 3:3]
            return out
        return torch.cat([part[i] for i, part in enumerate(m.split(sections, dim=-1))], -1)

    c, s = pick(c)[:, None, :], pick(s)[:, None, :]
    xf = x.float()
    r = 2 * cos.shape[1]
    out = xf.clone()
    if neox:
        x1, x2 = xf[..., :r // 2], xf[..., r // 2:r]
        out[..., :r // 2], out[..., r // 2:r] = x1 * c - x2 * s, x2 * c + x1 * s
    else:
        x1, x2 = xf[..., 0:r:2], xf[..., 1:r:2]
        out[..., 0:r:2], out[..., 1:r:2] = x1 * c - x2 * s, x2 * c + x1 * s
    return out


@pytest.mark.parametrize("style,mrope,sections,d", [
    ("neox", "chunked", (4, 3, 3), 20),             # head 20: rotary 20
    ("gptj", "chunked", (2, 3, 3), 24),             # a pass-through tail of 8
    ("neox", "interleaved", (4, 3, 3), 20),
    ("gptj", "interleaved", (6, 2, 2), 20),
])
def test_mrope(style, mrope, sections, d):
    half = sum(sections)
    tp = pipe(style, mrope, sections[1], sections[2])
    g = torch.Generator().manual_seed(2)
    t, h, p = 6, 3, 12
    x = torch.randn(t, h, d, generator=g).bfloat16()
    cos, sin = torch.randn(p, half, generator=g), torch.randn(p, half, generator=g)
    pos = torch.randint(0, p, (3, t), generator=g)
    pos[1, 2] = p                                   # past the table: the h frequencies NaN
    pos[2, 4] = -1
    inputs = {"x": x, "cos": cos, "sin": sin, "pos": pos}
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    want = oracle(x, cos, sin, pos, style == "neox", list(sections), mrope == "interleaved")
    assert_bitwise({"y": ref["y"]}, {"y": want})
    assert ref["y"][2].isnan().any() and not ref["y"][3].isnan().any()


def test_mrope_requirements():
    from qfuse.runtime.pipeline import QuantPipeline
    run = QuantPipeline(pipe("neox", "chunked", 5, 5), backend="reference")
    x = torch.zeros(2, 1, 16, dtype=torch.bfloat16)
    with pytest.raises(Exception, match="mrope sections h \\+ w = 10"):
        run(x, torch.zeros(4, 8), torch.zeros(4, 8), torch.zeros(3, 2, dtype=torch.int64))
    run = QuantPipeline(pipe("neox", "chunked", 1, 1), backend="reference")
    with pytest.raises(Exception, match="pos: .*dim 0 must be 3"):
        run(x, torch.zeros(4, 8), torch.zeros(4, 8), torch.zeros(2, 2, dtype=torch.int64))
