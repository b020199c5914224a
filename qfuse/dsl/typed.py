"""The checked program lives in :mod:`qfuse.dialect.typed`; re-exported for the front end."""
from ..dialect.typed import ConstInfo, ParamInfo, StageCall, TypedPipeline, Value  # noqa: F401

__all__ = ["Value", "ParamInfo", "ConstInfo", "StageCall", "TypedPipeline"]
