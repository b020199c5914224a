"""cache_write(quant=per_block): the cache_block space (three kernels) vs the reference:
grown scales re-quantise the block's earlier entries, kept scales, first offset 0,
untouched blocks, skipped tokens; every layout, fp8 and int8, both scale layouts."""
import pytest
import torch

from test_kernels_helpers import assert_bitwise, pipes, randn, run_both, split
from qfuse.backends.triton import infer_space, render_kernel

LAYOUT_SHAPE = {"key": "[B, H, DX, BS, X]", "value": "[B, H, D, BS]",
                "value_asm": "[B, H, BSX, D, X]", "flash": "[B, BS, H, D]"}


def block_pipe(layout, cdt, scale_layout):
    sshape = "[H, B]" if scale_layout == "default" else "[B, H]"
    src = (f"def cw(k: bf16[T, H, D], c: {cdt}{LAYOUT_SHAPE[layout]}, slots: i64[T], "
           f"s: f32{sshape}):\n"
           f"    kc, ks = cache_write(k, c, slots, layout={layout}, quant=per_block, scales=s, "
           f"scale_layout={scale_layout})\n    return kc, ks\n")
    return pipes(src, "cache_block_test.qp")["cw"]


def block_inputs(layout, cdt, scale_layout, h=2, d=32, nb=4, bs=16):
    x = 16
    shape = {"key": (nb, h, d // x, bs, x), "value": (nb, h, d, bs),
             "value_asm": (nb, h, bs // x, d, x), "flash": (nb, bs, h, d)}[layout]
    g = torch.Generator().manual_seed(11)
    codes = torch.randint(0, 0x70, shape, generator=g, dtype=torch.uint8)
    if cdt == "i8":
        cache = (codes.to(torch.int16) - 0x38).to(torch.int8)
    else:
        cache = codes.view(torch.float8_e4m3fn)
    # block 0: offsets 5, 9 with a tiny old scale (grows: re-quantise [0, 5));
    # block 1: offsets 0, 3 (first offset 0: new scale); block 2: offset 7 with a huge old
    # scale (kept); block 3: untouched; two skipped tokens
    slots = torch.tensor([5, -1, 16, 9, 39, 19, -7])
    k = randn(len(slots), h, d) * 4
    old = torch.tensor([[1e-3, 0.5, 100.0, 7.0], [2e-3, float("nan"), 50.0, 0.25]])[:h, :nb]
    s = old if scale_layout == "default" else old.t().contiguous()
    return {"k": k, "c": cache, "slots": slots, "s": s}


@pytest.mark.parametrize("layout", list(LAYOUT_SHAPE))
@pytest.mark.parametrize("cdt", ["fp8_e4m3fn", "i8"])
def test_per_block(layout, cdt):
    tp = block_pipe(layout, cdt, "default")
    assert infer_space(tp) == "cache_block"
    inputs = block_inputs(layout, cdt, "default")
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    moved = got["kc"].view(torch.uint8) != inputs["c"].view(torch.uint8)
    assert moved.any()


@pytest.mark.parametrize("layout", ["key", "flash"])
def test_per_block_asm_scales(layout):
    tp = block_pipe(layout, "fp8_e4m3fnuz", "asm")
    inputs = block_inputs(layout, "fp8_e4m3fnuz", "asm")
    inputs["c"] = inputs["c"].view(torch.uint8).view(torch.float8_e4m3fnuz)
    assert_bitwise(*run_both(tp, inputs))


def test_per_block_claims_then_three_kernels():
    ((kernel, space),) = split(block_pipe("key", "fp8_e4m3fn", "default"))
    ks = render_kernel(kernel, space)
    assert [n for n, _ in ks.launches] == ["cw__k0_claim", "cw__k0_amax", "cw__k0_scale",
                                           "cw__k0_write"]
    assert ks.name == "cw__k0_amax" and ks.grid == ks.launches[1][1]
    assert ks.launches[2][1] == ("B * H",)
    # the block words B * (H + 1), then the claim words of B * BS slots (int64, + 2)
    assert ks.workspace == "2 * (((B * (H + 1)) + 1) // 2 + (B * BS) + 2)"
    assert "tl.atomic_max(ws_ptr" in ks.text and "qft_code_to_f32" in ks.text
