"""The guide's dispatch table (section 9, "Backend Selection"), read from the guide itself:
every cell of it is a ``get_torch_quant`` / ``get_hip_quant`` / ``get_triton_quant`` call
whose function runs on a small input, bit-compared with the reference semantics of the
AITER entry point that cell names (``aiter_oracles``, written without qfuse), on the
backend that cell's kind maps to (torch -> reference; hip and triton -> Triton, the
interpreter for these CPU tensors)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import edge_rows, same_bits
import qfuse.aiter as aiter
from qfuse.aiter.ops import quant as Q

GUIDE = Path(__file__).resolve().parent / "data" / "aiter-quant-guide.md"
COLUMNS = {"PyTorch": Q.get_torch_quant, "HIP": Q.get_hip_quant, "Triton": Q.get_triton_quant}
KIND = {"PyTorch": "torch", "HIP": "hip", "Triton": "triton"}
M, N = 3, 256


def dispatch_table(text: str) -> dict:
    """``{(quant type name, column): cell}`` of the guide's "Backend Selection" table."""
    part = text.split("### Backend Selection", 1)[1].lstrip("\n")
    rows = []
    for line in part.splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    out = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        qt = cells[0].strip("`")
        for name, cell in zip(head[1:], cells[1:]):
            out[(qt, name)] = cell
    return out


TABLE = dispatch_table(GUIDE.read_text())


def _tiles_128x128(x, dt):
    """AITER's 'wrapped' 128x128 tiles, each quantised as pertoken_quant quantises a row:
    ``amax(tile) / dtype_max`` (a zero tile: 1), ``x / scale``."""
    m, n = x.shape
    tm, tn = -(-m // 128), -(-n // 128)
    y = torch.empty(m, n, dtype=dt)
    s = torch.empty(tm, tn)
    for i in range(tm):
        for j in range(tn):
            tile = x[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            q, sc = O.per_token(tile.reshape(1, -1), dt, "one", "div")
            y[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = q.view(tile.shape)
            s[i, j] = sc.item()
    return y, s


#: the reference semantics of every "Yes" cell: (quant type, column) -> oracle(x, dtype)
ORACLES = {
    ("per_Tensor", "PyTorch"): lambda x, dt: O.per_tensor(x, dt, "zero", "div"),
    ("per_Tensor", "HIP"): lambda x, dt: O.per_tensor(x, dt, "zero", "rcp"),
    ("per_Tensor", "Triton"): lambda x, dt: O.per_tensor(x, dt, "zero", "rcp"),
    ("per_Token", "PyTorch"): lambda x, dt: O.per_token(x, dt, "one", "div"),
    ("per_Token", "HIP"): lambda x, dt: O.per_token(x, dt, "zero", "rcp"),
    ("per_Token", "Triton"): lambda x, dt: O.per_token(x, dt, "zero", "rcp"),
    # E8M0 RoundUp (torch reference, HIP), Even (Triton's asm-layout kernel)
    ("per_1x32", "PyTorch"): lambda x, dt: O.mxfp4(x, "roundup"),
    ("per_1x32", "HIP"): lambda x, dt: O.mxfp4(x, "roundup"),
    ("per_1x32", "Triton"): lambda x, dt: O.mxfp4(x, "even"),
    # "wrapped": pertoken_quant per 1x128 block (zero block: scale 1); HIP's group kernel
    # floors the amax at 1e-10; Triton's per-token kernel on each block (zero: scale 0)
    ("per_1x128", "PyTorch"): lambda x, dt: O.per_group(x, dt, 128, "one", "div"),
    ("per_1x128", "HIP"): lambda x, dt: O.per_group(x, dt, 128, "floor", "rcp"),
    ("per_1x128", "Triton"): lambda x, dt: O.per_group(x, dt, 128, "zero", "rcp"),
    ("per_128x128", "PyTorch"): _tiles_128x128,
}

FP8_I8 = (torch.int8, torch.float8_e4m3fn, torch.float8_e4m3fnuz)


def _cells(kind: str) -> list:
    return [k for k, v in TABLE.items() if v.startswith(kind)]


def test_the_table_is_what_the_tests_cover():
    """Every cell is pass-through, Yes (possibly wrapped) or '-', and every Yes cell has
    its oracle: a new row or column in the guide fails here."""
    assert {v.split(" ")[0] for v in TABLE.values()} == {"pass-through", "Yes", "-"}
    assert set(_cells("Yes")) == set(ORACLES)
    assert {qt for qt, _ in TABLE} <= {q.name for q in aiter.QuantType}
    assert {c for _, c in TABLE} == set(COLUMNS)


@pytest.mark.parametrize("cell", _cells("pass-through"), ids=lambda c: "-".join(c))
def test_pass_through(cell):
    qt, column = cell
    x = torch.randn(2, 64)
    y, s = COLUMNS[column](aiter.QuantType[qt])(x)
    assert y is x and s is None


@pytest.mark.parametrize("cell", _cells("-"), ids=lambda c: "-".join(c))
def test_absent_cells_refuse(cell):
    qt, column = cell
    fn = COLUMNS[column](aiter.QuantType[qt])
    with pytest.raises(NotImplementedError, match=f"unsupported quant type .*{qt}"):
        fn(torch.randn(2, 256))


@pytest.mark.parametrize("cell", sorted(ORACLES), ids=lambda c: "-".join(c))
def test_supported_cells_follow_their_entry_point(cell):
    qt, column = cell
    fn = COLUMNS[column](aiter.QuantType[qt])
    assert aiter.backend_for(KIND[column]) == ("reference" if column == "PyTorch"
                                               else "triton")
    mx = qt == "per_1x32"
    x = edge_rows(M, N, nan=False)
    if qt == "per_128x128":
        x = edge_rows(130, 200, nan=False, seed=1)          # partial tiles on both edges
    for dt in ((None,) if mx else FP8_I8):
        y, s = fn(x) if dt is None else fn(x, quant_dtype=dt)
        wy, ws = ORACLES[cell](x, dt or torch.int8)
        if mx:
            same_bits(y.view(torch.uint8), wy, f"{cell} codes")
            same_bits(s.contiguous().view(torch.uint8), ws, f"{cell} scale bytes")
            continue
        same_bits(y, wy.view(y.shape), f"{cell} {dt} codes")
        same_bits(s.reshape(ws.shape).to(torch.float32), ws, f"{cell} {dt} scale")
    if not mx and qt != "per_128x128":
        assert y.shape == x.shape


def test_per_1x32_f4_quant_hip_is_the_fp4_form():
    """AITER's fp4-only HIP entry (``get_hip_quant``'s per_1x32 before v0.1.16)."""
    x = edge_rows(M, N, nan=False)
    y, s = Q.per_1x32_f4_quant_hip(x)
    wy, ws = O.mxfp4(x, "roundup")
    same_bits(y.view(torch.uint8), wy, "codes")
    same_bits(s.view(torch.uint8), ws, "scale bytes")
    with pytest.raises(NotImplementedError, match="fp4-only"):
        Q.per_1x32_f4_quant_hip(x, quant_dtype=torch.float8_e4m3fn)


def test_the_default_target_is_int8():
    """AITER's dispatched functions default to quant_dtype=dtypes.i8."""
    x = torch.randn(2, 256)
    for qt in ("per_Tensor", "per_Token", "per_1x128"):
        for column, get in COLUMNS.items():
            y, _ = get(aiter.QuantType[qt])(x)
            assert y.dtype == torch.int8, (qt, column)


def test_the_guide_example_names_the_table():
    """Section 9's example calls the dispatchers the table describes."""
    code = re.findall(r"get_(torch|hip|triton)_quant\(QuantType\.(\w+)\)", GUIDE.read_text())
    assert code and all((qt, {"torch": "PyTorch", "hip": "HIP", "triton": "Triton"}[k]) in TABLE
                        for k, qt in code)
