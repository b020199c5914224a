"""MX pipelines (E8M0 scales in every rounding mode, E2M1 packing, MXFP8, the AITER
e8m0_shuffle layout with its padding) through the Triton backend vs the reference."""
import pytest
import torch

from test_kernels_helpers import (assert_bitwise, assert_norm_explained, edge_rows, pipes,
                                  randn, run_both, split)

MODES = ["roundup", "even", "rne_legacy", "floor", "ceil"]

P = pipes("\n".join(f"""
def mxfp4_{m}(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0={m})
    return pack(round(x, s, fp4_e2m1)), s

def mxfp8_{m}(x: f16[M, N]):
    s = scale(x, fp8_e4m3fnuz, mx, e8m0={m})
    return round(x, s, fp8_e4m3fnuz), s
""" for m in MODES) + """
def mxfp4_codes(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx)
    return round(x, s, fp4_e2m1), s

def mxfp8_fn(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, mx, e8m0=floor)
    return round(x, s, fp8_e4m3fn), s

def rms_mxfp4_shuffle(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp4_e2m1, mx, e8m0=even)
    q = pack(round(y, s, fp4_e2m1))
    return q, shuffle(s)

def mxfp4_half_up(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return pack(round(x, s, fp4_e2m1, mode=half_up)), s

def mxfp4_shuffle_pad(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx)
    return pack(round(x, s, fp4_e2m1)), shuffle(s, pad=127), s
""", "mx_test.qp")


def mx_rows(m, n, seed=0):
    """Edge rows plus magnitudes spread over many binades (E8M0 boundaries)."""
    x = edge_rows(m, n, dtype=torch.float32, seed=seed)
    if m > 5:
        x[5] = x[5] * torch.exp2(torch.arange(n) % 40 - 20.0)
    if m > 6:
        x[6, :] = 6.0 * 2.0 ** torch.arange(-n // 2, n - n // 2).float().clamp(-140, 120)
    return x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,n", [(7, 96), (3, 40)])
def test_mxfp4_modes(mode, m, n):
    x = mx_rows(m, n).to(torch.bfloat16)
    assert_bitwise(*run_both(P[f"mxfp4_{mode}"], {"x": x}))


@pytest.mark.parametrize("m,n", [(7, 96), (9, 68)])
def test_mxfp4_half_up(m, n):
    """AITER's MoE-sort rounding (ties away from zero) bit for bit, and it is not RNE: in
    a row of ties at scale 1 (amax 6, e8m0=even) every tie rounds up."""
    x = mx_rows(m, n)
    ties = torch.tensor([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -2.5, -5.0, 0.0])
    x[1] = ties.repeat(n // len(ties) + 1)[:n]
    x = x.to(torch.bfloat16)
    got, ref = run_both(P["mxfp4_half_up"], {"x": x})
    assert_bitwise(got, ref)
    q = P["mxfp4_half_up"].return_names[0]
    codes = ref[q][1, :6]          # bytes of (6, 0.25), (0.75, 1.25), (1.75, 2.5), ...
    assert codes.tolist() == [0x17, 0x32, 0x54, 0x76, 0xD9, 0x0F]


@pytest.mark.parametrize("n", [28, 68, 200, 2])
@pytest.mark.parametrize("m,chunks", [(1, 1), (9, 1), (9, 4), (0, 1)])
def test_mx_partial_last_group(n, m, chunks):
    """AITER's MXFP4 kernels take N % 4 == 0 and its tests use N = 28, 68, 200: the last
    group holds N % 32 elements, and its scale is the E8M0 of their amax (the padding
    counts as zeros, docs/semantics.md): packed codes, bytes and the shuffled layout,
    whole rows or column chunks."""
    from qfuse.backends.triton import TritonConfig, run_pipeline
    x = mx_rows(m, n, seed=n).to(torch.bfloat16)
    for name in ("mxfp4_even", "mxfp4_shuffle_pad", "mxfp8_fn"):
        tp = P[name]
        ref = run_both(tp, {"x": x})[1]
        got = run_pipeline(tp, {"x": x}, kernels=split(tp), config=TritonConfig(col_chunks=chunks),
                           interpret=True)
        assert_bitwise(got, ref)


def test_mx_odd_width_fp8():
    """MXFP8 codes need no packing: any N, here 33 (a last group of one element)."""
    assert_bitwise(*run_both(P["mxfp8_fn"], {"x": mx_rows(6, 33).to(torch.bfloat16)}))


@pytest.mark.parametrize("mode", MODES)
def test_mxfp8_fnuz_modes(mode):
    x = mx_rows(7, 80).clamp(-6e4, 6e4).to(torch.float16)
    assert_bitwise(*run_both(P[f"mxfp8_{mode}"], {"x": x}))


@pytest.mark.parametrize("name", ["mxfp4_codes", "mxfp8_fn"])
def test_mx_unpacked(name):
    assert_bitwise(*run_both(P[name], {"x": mx_rows(8, 64).to(torch.bfloat16)}))


@pytest.mark.parametrize("m,n", [(33, 64), (3, 320), (1, 32)])
def test_rmsnorm_mxfp4_shuffle(m, n):
    tp = P["rms_mxfp4_shuffle"]
    inputs = {"x": randn(m, n), "w": randn(n, seed=1)}
    got, ref = run_both(tp, inputs)
    sh = tp.return_names[1]
    assert got[sh].shape == (256, -(-(n // 32) // 8) * 8)
    # codes: up to the sum order; the shuffled bytes: every byte a scale or the pad
    q = tp.return_names[0]
    assert_norm_explained(_unshuffled(tp), inputs, {q: got[q], "s": _unshuffle(got[sh], m, n)},
                          {q: ref[q], "s": _unshuffle(ref[sh], m, n)}, n)
    pad = torch.ones_like(got[sh], dtype=torch.bool)
    pad.view(-1)[_shuffle_positions(m, n // 32, got[sh].shape[1])] = False
    assert (got[sh][pad] == 0).all() and (ref[sh][pad] == 0).all()


def test_mxfp4_shuffle_padding_byte():
    tp = P["mxfp4_shuffle_pad"]
    m, n = 37, 96
    got, ref = run_both(tp, {"x": mx_rows(m, n).to(torch.bfloat16)})
    assert_bitwise(got, ref)
    sh = tp.return_names[1]
    assert got[sh].shape == (256, 8) and int((got[sh] == 127).sum()) >= 256 * 8 - m * 3


@pytest.mark.parametrize("m,n,chunks,block_m", [(37, 96, 2, 1), (1, 224, 8, 1),
                                                (300, 256, 2, 4), (64, 256, 1, 8)])
def test_shuffle_pad_bytes_from_every_grid(m, n, chunks, block_m):
    """The kernel writes every pad byte itself, shared out over however many programs
    the grid has (column chunks, rows per program): rows past M within and beyond their
    32-row block, columns past S, and nothing else (the buffer starts as garbage)."""
    from qfuse.backends.triton import TritonConfig, run_pipeline
    from qfuse.backends.triton.launch.fastpath import BoundLaunch
    tp = P["mxfp4_shuffle_pad"]
    x = mx_rows(m, n).to(torch.bfloat16)
    real = BoundLaunch.allocate

    def garbage(self, inputs, device, skip=()):
        outs = real(self, inputs, device, skip)
        for t in outs.values():
            t.view(torch.uint8).fill_(0xA5)
        return outs
    BoundLaunch.allocate = garbage
    try:
        got = run_pipeline(tp, {"x": x}, config=TritonConfig(col_chunks=chunks,
                                                             block_m=block_m), interpret=True)
    finally:
        BoundLaunch.allocate = real
    ref = run_both(tp, {"x": x})[1]
    assert_bitwise(got, ref)
    sh = tp.return_names[1]
    assert not (got[sh].view(torch.uint8) == 0xA5).any()


def _shuffle_positions(m, g, sn):
    from qfuse.backends.reference.numerics import shuffle_index
    r = torch.arange(m).reshape(m, 1)
    c = torch.arange(g).reshape(1, g)
    return shuffle_index(r, c, sn).reshape(-1)


def _unshuffle(buf, m, n):
    g = -(-n // 32)
    return buf.reshape(-1)[_shuffle_positions(m, g, buf.shape[1])].reshape(m, g)


def _unshuffled(tp):
    """The pipeline with the scale returned unshuffled (for the sum-order check)."""
    from qfuse.backends.triton import sub_pipeline
    calls = [c for c in tp.calls if c.stage != "shuffle"]
    s = next(c for c in calls if c.stage == "scale").results[0]
    sub = sub_pipeline(tp, calls, [p.value for p in tp.params], [tp.returns[0], s])
    sub.return_names = [tp.return_names[0], "s"]
    return sub


SHUFFLE_PARAM = pipes("""
def shuffle_given(s: e8m0[M, G]):
    return shuffle(s, pad=127)

def shuffle_both(x: bf16[M, N], t: e8m0[M, G]):
    s = scale(x, fp4_e2m1, mx)
    return shuffle(s), shuffle(t)
""", "shuffle_param.qp")


@pytest.mark.parametrize("m,g", [(1, 1), (33, 5), (256, 8), (300, 17), (0, 3)])
def test_shuffle_of_a_parameter(m, g):
    """AITER's e8m0_shuffle of a stored scale: a layout kernel of its own, every byte of
    the padded buffer written (scale bytes at their shuffled positions, pad elsewhere;
    the reference is checked against AITER's view/permute in test_ref_layout.py)."""
    s = torch.randint(0, 256, (m, g), dtype=torch.uint8, generator=torch.Generator().manual_seed(m))
    got, ref = run_both(SHUFFLE_PARAM["shuffle_given"], {"s": s})
    assert_bitwise(got, ref)
    assert next(iter(got.values())).shape == (-(-m // 256) * 256, -(-g // 8) * 8)


def test_shuffle_of_a_parameter_beside_a_computed_scale():
    """A given scale and one computed in the pipeline, both shuffled: the two layouts
    share the row kernel over M rows without mixing their pad bytes."""
    x = mx_rows(37, 96).to(torch.bfloat16)
    t = torch.randint(0, 256, (37, 5), dtype=torch.uint8)
    got, ref = run_both(SHUFFLE_PARAM["shuffle_both"], {"x": x, "t": t})
    assert_bitwise(got, ref)
