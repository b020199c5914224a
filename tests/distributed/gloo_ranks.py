"""Run a function on several gloo processes on the CPU (the spawn of
tests/aiter/test_aiter_communication.py as a helper): fork ``world`` ranks from this
process (qfuse and torch imported, pipelines compiled here first), each with a process
group on a file store, and collect what each returns (saved with torch.save)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank(rank: int, world: int, store: str, out_dir: str, fn, args: tuple) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world)
    try:
        torch.save(fn(rank, world, *args), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, world: int, fn, *args) -> list:
    """``[fn(rank, world, *args) for every rank]``, each run in its own gloo process."""
    out = tmp_path / f"w{world}"
    out.mkdir()
    mp.start_processes(_rank, args=(world, str(out / "store"), str(out), fn, args),
                       nprocs=world, join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bytes of ``t`` as integers (fp8, bf16 and NaNs compare exactly)."""
    t = t.contiguous()
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])


def same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(bits(a[k]), bits(b[k]))
        for k in a)
