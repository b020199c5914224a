"""Glue (split-K reduce + act_mul, flatten, gather, rope) and paged KV-cache writes
through the Triton backend vs the reference."""
import itertools

import pytest
import torch

from test_kernels_helpers import (assert_bitwise, assert_norm_explained, edge_rows, pipes,
                                  randn, run_both, split)

P = pipes("""
def reduce_silu_mul(partials: f32[S, M, N2]):
    h = act_mul(reduce(partials), act=silu)
    s = scale(h, fp8_e4m3fn, per_1x128, zero=floor)
    return round(h, s, fp8_e4m3fn, recip=mul_rcp), s

def reduce_gelu_mul(partials: f32[S, M, N2]):
    h = act_mul(reduce(partials), act=gelu_tanh)
    s = scale(h, fp8_e4m3fn, per_token)
    return round(h, s, fp8_e4m3fn), s

def reduce_only(partials: bf16[S, M, N]):
    return cast(reduce(partials), bf16)

def gelu_erf(x: bf16[M, N], b: bf16[N]):
    h = gelu(x + b)
    s = scale(h, fp8_e4m3fnuz, per_token)
    return round(h, s, fp8_e4m3fnuz), s

def flatten_group(x: bf16[M, A, B]):
    f = flatten(x)
    s = scale(f, fp8_e4m3fn, per_1x128, zero=floor)
    return round(f, s, fp8_e4m3fn, recip=mul_rcp), s

def flatten_scaled(x: f16[M, A, B], alpha: f32 = 0.5):
    return cast(flatten(x * alpha), f16)

def gather_mxfp4(x: bf16[M, N], ids: i32[R]):
    g = gather(x, ids, packed_ids=true)
    s = scale(g, fp4_e2m1, mx, e8m0=even)
    return pack(round(g, s, fp4_e2m1)), s

def gather_copy(x: bf16[M, N], ids: i64[R]):
    return gather(x, ids)

def rope_neox(x: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[T]):
    return cast(rope(x, cos, sin, pos), bf16)

def rope_gptj(x: f16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i32[T]):
    return rope(x, cos, sin, pos, style=gptj)

def scaled_residual(x: bf16[M, N], res: bf16[M, N], alpha: f32 = 0.5):
    return cast(x * alpha + res, bf16), x + 1.5
""", "glue_test.qp")


def test_reduce_then_silu_mul_group_fp8():
    tp = P["reduce_silu_mul"]
    inputs = {"partials": randn(3, 5, 512, dtype=torch.float32)}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, 8)      # exp: a few ulp allowed


def test_reduce_then_gelu_tanh_mul():
    tp = P["reduce_gelu_mul"]
    inputs = {"partials": randn(2, 4, 100, dtype=torch.float32)}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, 8)


@pytest.mark.parametrize("s", [1, 4])
def test_reduce_order_exact(s):
    p = randn(s, 3, 50, dtype=torch.float32) * torch.tensor([1e8, 1.0, -1e8, 3.0])[:s, None, None]
    assert_bitwise(*run_both(P["reduce_only"], {"partials": p.to(torch.bfloat16)}))


def test_gelu_erf():
    tp = P["gelu_erf"]
    inputs = {"x": randn(4, 64), "b": randn(64, seed=1)}
    got, ref = run_both(tp, inputs)
    assert_norm_explained(tp, inputs, got, ref, 8)


@pytest.mark.parametrize("strided", [False, True])
def test_flatten_group(strided):
    x = edge_rows(4 * 6, 50, specials=False).reshape(4, 6, 50)
    if strided:
        x = torch.cat([x, x], dim=2)[:, :, 7:57]         # strides (600, 100, 1)
    assert_bitwise(*run_both(P["flatten_group"], {"x": x}))


def test_flatten_elementwise_producer():
    x = randn(3, 5, 7, dtype=torch.float16)
    assert_bitwise(*run_both(P["flatten_scaled"], {"x": x}))


def test_gather_packed_ids_mxfp4():
    m, n = 6, 64
    x = edge_rows(m, n)
    ids = torch.tensor([5, 0, (3 << 24) | 2, -1, 6, 1 << 24, 4, 0x7FFFFFFF], dtype=torch.int32)
    assert_bitwise(*run_both(P["gather_mxfp4"], {"x": x, "ids": ids}))


def test_gather_zero_rows_and_empty():
    x = edge_rows(4, 20)
    ids = torch.tensor([3, -5, 4, 0], dtype=torch.int64)
    got, ref = run_both(P["gather_copy"], {"x": x, "ids": ids})
    assert_bitwise(got, ref)
    assert (got[P["gather_copy"].return_names[0]][1] == 0).all()
    assert_bitwise(*run_both(P["gather_copy"], {"x": x[:0], "ids": ids}))


@pytest.mark.parametrize("name,rot", [("rope_neox", 8), ("rope_neox", 16), ("rope_gptj", 6)])
def test_rope(name, rot):
    tp = P[name]
    t, h, d, p = 5, 3, 32, 11
    dt = tp.params[0].value.type.dtype.torch_dtype()
    pdt = tp.params[3].value.type.dtype.torch_dtype()
    inputs = {"x": randn(t, h, d, dtype=dt), "cos": randn(p, rot, dtype=torch.float32, seed=1),
              "sin": randn(p, rot, dtype=torch.float32, seed=2),
              "pos": torch.tensor([0, 10, 3, 3, 7], dtype=pdt)}
    assert_bitwise(*run_both(tp, inputs))


def test_two_outputs_same_rows():
    x, res = randn(5, 33), randn(5, 33, seed=1)
    assert_bitwise(*run_both(P["scaled_residual"], {"x": x, "res": res}))


# ------------------------------------------------------------------ KV cache
LAYOUT_SHAPE = {"key": "[B, H, DX, BS, X]", "value": "[B, H, D, BS]",
                "value_asm": "[B, H, BSX, D, X]", "flash": "[B, BS, H, D]"}


def cache_pipe(layout, quant, cdt, scale_layout="default", slot_dt="i64"):
    sc = {"none": "", "static": ", s: f32[1]",
          "per_token": ", s: f32[H, S]" if scale_layout == "default" else ", s: f32[B, H, BS]"}
    opts = f"layout={layout}, quant={quant}" + (", scales=s" if quant != "none" else "") + \
        (f", scale_layout={scale_layout}" if quant == "per_token" else "")
    ret = "kc, ks" if quant == "per_token" else "kc"
    src = (f"def cw(k: bf16[T, H, D], c: {cdt}{LAYOUT_SHAPE[layout]}, slots: {slot_dt}[T]"
           f"{sc[quant]}):\n    {ret} = cache_write(k, c, slots, {opts})\n    return {ret}\n")
    return pipes(src, "cache_test.qp")["cw"]


def cache_inputs(layout, quant, cdt, scale_layout, t=6, h=2, d=32, nb=3, bs=16, slot_dt=torch.int64):
    x = 16 // (2 if cdt == "bf16" else 1)
    shape = {"key": (nb, h, d // x, bs, x), "value": (nb, h, d, bs),
             "value_asm": (nb, h, bs // x, d, x), "flash": (nb, bs, h, d)}[layout]
    g = torch.Generator().manual_seed(7)
    if cdt == "bf16":
        cache = torch.randn(shape, generator=g).to(torch.bfloat16)
    else:
        cache = torch.randint(0, 120, shape, generator=g, dtype=torch.uint8)
        cache = cache.view(torch.int8) if cdt == "i8" else cache.view(torch.float8_e4m3fn)
    slots = torch.tensor([5, -1, 17, 47, 0, -3], dtype=slot_dt)[:t]
    inputs = {"k": edge_rows(t * h, d, specials=False).reshape(t, h, d) * 3, "c": cache,
              "slots": slots}
    if quant == "static":
        inputs["s"] = torch.tensor([0.05])
    elif quant == "per_token":
        shp = (h, nb * bs) if scale_layout == "default" else (nb, h, bs)
        inputs["s"] = torch.rand(shp, generator=g)
    return inputs


CASES = ([(lay, "none", "bf16", "default") for lay in LAYOUT_SHAPE]
         + [(lay, "static", cdt, "default") for lay, cdt in
            itertools.product(LAYOUT_SHAPE, ["fp8_e4m3fn", "i8"])]
         + [(lay, "per_token", "fp8_e4m3fn", sl) for lay in ("key", "value_asm", "flash")
            for sl in ("default", "asm")]
         + [("value", "per_token", "i8", "default")])


@pytest.mark.parametrize("layout,quant,cdt,scale_layout", CASES)
def test_cache_write(layout, quant, cdt, scale_layout):
    tp = cache_pipe(layout, quant, cdt, scale_layout)
    inputs = cache_inputs(layout, quant, cdt, scale_layout)
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    kc = got[tp.return_names[0]]
    assert not torch.equal(bits_of(kc), bits_of(inputs["c"]))      # something was written


def bits_of(t):
    return t.view(torch.uint8) if t.element_size() == 1 else t.view(torch.int16)


def test_cache_write_in_place_and_i32_slots():
    from qfuse.backends.triton import compiled
    tp = cache_pipe("key", "per_token", "fp8_e4m3fn", slot_dt="i32")
    inputs = cache_inputs("key", "per_token", "fp8_e4m3fn", "default", slot_dt=torch.int32)
    ref = run_both(tp, {k: v.clone() for k, v in inputs.items()})[1]
    (kernel,) = split(tp)
    k = compiled(*kernel)
    outs = {"kc": inputs["c"], "ks": inputs["s"]}        # the caches themselves: in place
    k.launch(inputs, outs, interpret=True)
    assert_bitwise({"kc": inputs["c"], "ks": inputs["s"]}, ref)


P_ROPE_CACHE = pipes("""
def rms_rope_cache(k: bf16[T, H, D], w: bf16[D], cos: f32[P, R], sin: f32[P, R], pos: i64[T],
                   c: bf16[B, H, DX, BS, X], slots: i64[T], eps: f32 = 1e-6):
    kn = norm(k, w, eps)
    kr = cast(rope(kn, cos, sin, pos), bf16)
    return cache_write(kr, c, slots, layout=key)

def rope_cache_fp8(k: bf16[T, H, D], cos: f32[P, R], sin: f32[P, R], pos: i64[T],
                   c: fp8_e4m3fn[B, BS, H, D], slots: i32[T], s: f32[H, S]):
    kr = rope(k, cos, sin, pos, style=gptj)
    kc, ks = cache_write(kr, c, slots, layout=flash, quant=per_token, scales=s)
    return kc, ks
""", "rope_cache_test.qp")


def test_rope_then_cache_write():
    t, h, d, nb, bs = 5, 2, 32, 3, 16
    tp = P_ROPE_CACHE["rope_cache_fp8"]
    inputs = {"k": randn(t, h, d), "cos": randn(9, 12, dtype=torch.float32, seed=1),
              "sin": randn(9, 12, dtype=torch.float32, seed=2),
              "pos": torch.tensor([1, 8, 0, 4, 4]),
              "c": torch.zeros(nb, bs, h, d, dtype=torch.uint8).view(torch.float8_e4m3fn),
              "slots": torch.tensor([3, -1, 40, 16, 0], dtype=torch.int32),
              "s": torch.full((h, nb * bs), -1.0)}
    assert_bitwise(*run_both(tp, inputs))


def test_rmsnorm_rope_key_cache():
    t, h, d, nb, bs = 4, 2, 64, 2, 16
    tp = P_ROPE_CACHE["rms_rope_cache"]
    inputs = {"k": randn(t, h, d), "w": randn(d, seed=3),
              "cos": randn(7, 16, dtype=torch.float32, seed=1),
              "sin": randn(7, 16, dtype=torch.float32, seed=2), "pos": torch.tensor([6, 0, 2, 2]),
              "c": torch.zeros(nb, h, d // 8, bs, 8, dtype=torch.bfloat16),
              "slots": torch.tensor([31, 0, -1, 7])}
    got, ref = run_both(tp, inputs)
    # the norm's sum order may move a bf16 value by one ulp before rope
    a, b = got[tp.return_names[0]].float(), ref[tp.return_names[0]].float()
    assert torch.allclose(a, b, rtol=2 ** -6, atol=1e-6)
    assert float((a == b).float().mean()) > 0.98
