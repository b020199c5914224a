"""The reference backend: torch eager implementations that define every stage's semantics.

``docs/semantics.md`` is the contract; this package is its executable form. Public API:

* :mod:`.numerics` - bit-exact primitives (fp8 / E2M1 / E8M0 / int rounding, shuffle index).
* :data:`.stages.HANDLERS` - ``stage name -> run_<stage>``; :func:`.stages.call_stage`.
* :func:`.interpreter.run_pipeline` - run a TypedPipeline on tensors.
"""
from .interpreter import bind_inputs, run_pipeline
from .stages import HANDLERS, call_stage

__all__ = ["run_pipeline", "bind_inputs", "HANDLERS", "call_stage"]
