"""Tuning tables: the launch config to use per kernel, device and row-count bucket.

A kernel's text does not depend on its launch configuration (block sizes are
constexprs), so a table only picks a ``TritonConfig`` per kernel and bucket. The bucket
is the device name plus the kernel's row count (the rows its programs cover, whatever
the pipeline calls its dims: ``M``, ``T * H`` for a KV-cache write, ``B`` in
``x: bf16[B, N]``) rounded up to a power of two, ``"NVIDIA H200|rows<=4096"``.

Tables are JSON (``{kernel: {bucket: {"config": {...}, "us": float}}}``), kept in the
runtime cache (``<pipeline>.autotune.json``) and shipped in bundles. This module depends
on nothing but the cache; the tuner that fills tables is :mod:`qfuse.runtime.autotune`.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict
from typing import Optional

__all__ = ["TuningTable", "shape_bucket", "save_tuning", "load_tuning", "read_tuning",
           "MAX_BUCKET"]

MAX_BUCKET = 1 << 24     # larger row counts share the last bucket


def shape_bucket(device_name: str, rows: int) -> str:
    """The bucket of a launch of ``rows`` rows on ``device_name``."""
    b = 1
    while b < min(max(1, int(rows)), MAX_BUCKET):
        b <<= 1
    return f"{device_name}|rows<={b}"


class TuningTable:
    """``{kernel name: {bucket: {"config": {...}, "us": float}}}``."""

    def __init__(self, entries: Optional[dict] = None):
        self.entries = entries or {}

    def config_for(self, kernel: str, bucket: str):
        hit = self.entries.get(kernel, {}).get(bucket)
        return table_config(hit) if hit else None

    def record(self, kernel: str, bucket: str, config, us: float) -> None:
        self.entries.setdefault(kernel, {})[bucket] = {"config": asdict(config), "us": us}

    def merge(self, other: "TuningTable") -> "TuningTable":
        for k, buckets in other.entries.items():
            self.entries.setdefault(k, {}).update(buckets)
        return self

    def dumps(self) -> str:
        return json.dumps(self.entries, indent=1, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> "TuningTable":
        return cls(json.loads(text))


def _cache_key(cp, device_name: str) -> str:
    from .cache import cache_key
    return cache_key("autotune", device_name, *[s.source.key for s in cp.steps if s.source])


def save_tuning(cp, device_name: str, table: TuningTable, cache=None) -> None:
    """Keep ``table`` in the runtime cache (``<pipeline>.autotune.json``)."""
    from .cache import KernelCache
    (cache or KernelCache()).put(_cache_key(cp, device_name), f"{cp.name}.autotune",
                                 {f"{cp.name}.autotune.json": table.dumps()})


def load_tuning(cp, device_name: str, cache=None) -> Optional[TuningTable]:
    """The table kept for these kernels on this device, if any (a damaged one is a miss)."""
    from .cache import KernelCache
    return (cache or KernelCache()).load(_cache_key(cp, device_name), f"{cp.name}.autotune",
                                         f"{cp.name}.autotune.json", read_tuning)


def table_config(hit: dict):
    """The ``TritonConfig`` of one table entry."""
    from ..backends.triton.kernel import TritonConfig
    return TritonConfig(**hit["config"])


@functools.lru_cache(maxsize=1)
def _tuning_schema():
    """``TuningTable.entries``: {kernel: {bucket: {"config": TritonConfig fields, "us"}}}.
    The config is splatted into ``TritonConfig``, so unknown keys are refused."""
    from ..backends.triton.kernel import TritonConfig
    from .schema import MapOf, Obj, dataclass_spec
    return MapOf(MapOf(Obj({"config": dataclass_spec(TritonConfig, closed=True),
                            "us": float})))


def read_tuning(raw: bytes, what: str) -> TuningTable:
    """A :class:`TuningTable` from JSON bytes, checked: its shape, and every config's values
    (``TritonConfig`` refuses a block_m that is no power of two, ...). Raises
    :class:`~qfuse.runtime.schema.SchemaError` naming ``what``."""
    from .schema import SchemaError, load_json
    table = TuningTable(load_json(raw, _tuning_schema(), what))
    for kernel, buckets in table.entries.items():
        for bucket, hit in buckets.items():
            try:
                table_config(hit)
            except (TypeError, ValueError) as e:
                raise SchemaError(f"{what}: {kernel} at {bucket}: {e}") from None
    return table
