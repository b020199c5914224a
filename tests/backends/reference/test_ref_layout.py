"""``shuffle`` against AITER's 6-D view/permute formulation, and ``pack``."""
from __future__ import annotations

import pytest
import torch

from qfuse.backends.reference.numerics import shuffle_index
from qfuse.backends.reference.stages import run_pack, run_shuffle


def shuffle_by_permute(s: torch.Tensor, pad: int) -> torch.Tensor:
    """AITER e8m0_shuffle: pad to (256, 8) multiples, view (sm/32, 2, 16, sn/8, 2, 4),
    permute (0, 3, 5, 2, 4, 1), view back as (sm, sn)."""
    m, n = s.shape
    sm, sn = (m + 255) // 256 * 256, (n + 7) // 8 * 8
    buf = torch.full((sm, sn), pad, dtype=torch.uint8)
    buf[:m, :n] = s
    return buf.view(sm // 32, 2, 16, sn // 8, 2, 4).permute(0, 3, 5, 2, 4, 1).contiguous().view(sm, sn)


@pytest.mark.parametrize("m,n", [(1, 1), (3, 5), (31, 9), (256, 8), (257, 17), (300, 3), (16, 64)])
@pytest.mark.parametrize("pad", [0, 127])
def test_shuffle_matches_permute(m, n, pad):
    g = torch.Generator().manual_seed(m * 1000 + n)
    s = torch.randint(0, 256, (m, n), dtype=torch.uint8, generator=g)
    (got,) = run_shuffle(s, pad=pad)
    want = shuffle_by_permute(s, pad)
    assert got.dtype == torch.uint8 and got.shape == want.shape
    assert torch.equal(got, want)


def test_shuffle_index_formula_matches_permute():
    sm, sn = 512, 24
    ids = torch.arange(sm * sn, dtype=torch.int64)
    # put each entry's own (r, c) id into the buffer and see where permute sends it
    perm = ids.view(sm // 32, 2, 16, sn // 8, 2, 4).permute(0, 3, 5, 2, 4, 1).reshape(-1)
    for flat, src in enumerate(perm.tolist()):
        r, c = divmod(src, sn)
        assert shuffle_index(r, c, sn) == flat


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float8_e8m0fnu])
def test_shuffle_of_a_pipeline_input(dtype):
    """AITER's e8m0_shuffle of a stored scale is a pipeline over a parameter (uint8 or
    torch's float8_e8m0fnu storage of the same bytes)."""
    from qfuse.backends.reference import run_pipeline
    from qfuse.dsl import load_source
    tp = load_source("def f(s: e8m0[M, G]):\n    return shuffle(s, pad=127)\n")["f"]
    s = torch.randint(0, 256, (40, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    (got,) = run_pipeline(tp, {"s": s.view(dtype)}).values()
    assert torch.equal(got, shuffle_by_permute(s, 127))


def test_shuffle_pad_checked():
    with pytest.raises(ValueError):
        run_shuffle(torch.zeros(2, 2, dtype=torch.uint8), pad=256)


def test_pack_stage_fp4_and_int4():
    codes = torch.tensor([[0x1, 0xF, 0x8, 0x7], [0x0, 0x0, 0xA, 0x5]], dtype=torch.uint8)
    (p,) = run_pack(codes)
    assert p.dtype == torch.uint8 and p.tolist() == [[0xF1, 0x78], [0x00, 0x5A]]
    (p4,) = run_pack(torch.tensor([[-1, -8, 5, -3]], dtype=torch.int8))
    assert p4.tolist() == [[0x8F, 0xD5]]
