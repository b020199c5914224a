"""A compact table of a pipeline run: each input and output with shape, dtype and a peek."""
from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

__all__ = ["summarize", "describe_tensor"]


def describe_tensor(t) -> str:
    if not isinstance(t, torch.Tensor):
        return repr(t)
    if t.numel() == 0:
        return "(empty)"
    if t.dtype in (torch.uint8, torch.int8, torch.int32, torch.int64):
        flat = t.flatten()
        head = " ".join(f"{int(v):#04x}" if t.dtype == torch.uint8 else str(int(v))
                        for v in flat[:6])
        return f"{head}{' ...' if flat.numel() > 6 else ''}  [min {int(flat.min())}, max {int(flat.max())}]"
    f = t.float()
    finite = f[torch.isfinite(f)]
    stats = (f"absmax {finite.abs().max().item():.4g}" if finite.numel() else "no finite values")
    nonfinite = f.numel() - finite.numel()
    return f"{stats}{f', {nonfinite} non-finite' if nonfinite else ''}"


def summarize(tp, inputs: dict, outputs: dict, dims: dict, console: Console = None) -> None:
    console = console or Console()
    shape = ", ".join(f"{k}={v}" for k, v in dims.items())
    table = Table(title=f"{tp.name}  ({shape})", title_justify="left")
    for col in ("", "name", "shape", "dtype", "values"):
        table.add_column(col)
    for name, v in inputs.items():
        table.add_row("in", name, str(tuple(v.shape)) if isinstance(v, torch.Tensor) else "scalar",
                      str(v.dtype).replace("torch.", "") if isinstance(v, torch.Tensor) else type(v).__name__,
                      describe_tensor(v))
    for name, v in outputs.items():
        table.add_row("out", name, str(tuple(v.shape)), str(v.dtype).replace("torch.", ""),
                      describe_tensor(v))
    console.print(table)
