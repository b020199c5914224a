"""The ``qf`` dialect: one op per catalog stage, with its verifier.

The op classes are generated from :data:`qfuse.dialect.stages.STAGES` with
``torch_mlir.dialects.ext`` (Python-defined IRDL dialects), so a stage is declared once:

* operands in catalog order: a tensor operand is ``Operand[RankedTensorType]``, a scalar
  operand (``eps``) and the elementwise operands of ``add``/``mul`` (tensor or scalar)
  are ``Operand[Any]``; optional operands are ``Optional`` (``operandSegmentSizes``);
* one attribute per option (encodings in :mod:`qfuse.dialect.encoding`); every option
  is present, resolved, so the IR states every numeric choice;
* results from ``Stage.results`` (a trailing ``?`` marks an optional result);
* the ``Pure`` trait: stages are value-semantic (``cache_write`` returns the updated
  cache), so a dead op is erased by ``canonicalize``.

Verifiers (``verify_<stage>``, listed in :data:`OP_VERIFIERS`) run after parsing, after
building and after every pass. They decode the options and check them
(``OptionSpec.check`` + ``resolve_options``), rebuild the operand types and run the
stage's ``infer`` rule, then compare with the op's result types (presence, dtype, rank,
dims). Dims: MLIR keeps no dim names, and a dynamic dim may hold any size, so every
``?`` becomes an :class:`~qfuse.dialect.encoding.UnknownDim` that equals every dim
(labelled with its ``qf.dims`` name, for messages), and so does any expression over one.
Static dims are exact, and the producing ``qf`` op's inferred type refines its results
(e.g. a per_tensor scale is ``[1]`` even when the IR says ``?``). So only provable
mismatches, two different constants, are reported: never a false positive on valid IR.
(The DSL checker is stricter: there ``x: [M, N]`` and ``w: [K]`` mismatch by name.)

Fused kernels (next step) will be private ``func.func``s marked ``qf.kernel`` holding
these same ops; nothing here assumes an op sits in a pipeline function.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Optional

from .encoding import DIMS_ATTR, UnknownDim, attr_name, dims_from_attr, option_value, value_type
from .mlir import Dialect, Operand, Pure, Result, ir, register_dialect_module, result
from .stages import STAGES, Stage, StageError, infer_results, resolve_options
from .types import ScalarType, TensorType

__all__ = ["QF", "OP_CLASSES", "OP_VERIFIERS", "ANY_OPERANDS", "op_class", "stage_of",
           "op_options", "op_operands", "op_results", "make_context", "verify_stage",
           "shared_inference"]


class QF(Dialect, name="qf"):
    """The qfuse dialect (``qf.*`` ops, loaded per Context by :func:`make_context`)."""


#: Operands declared ``tensor`` in the catalog that also accept a scalar (elementwise glue).
ANY_OPERANDS = {("add", "a"), ("add", "b"), ("mul", "a"), ("mul", "b")}

_ATTR_TYPES = {"enum": ir.StringAttr, "dtype": ir.StringAttr, "name": ir.StringAttr,
               "float": ir.FloatAttr,
               "int": ir.IntegerAttr, "bool": ir.IntegerAttr}


def _class_name(st: Stage) -> str:
    return "".join(p.capitalize() for p in st.name.split("_")) + "Op"


def _make_op_class(st: Stage) -> type:
    """Build the ``ext`` op class of one stage (fields in catalog order)."""
    notes: dict = {}
    namespace: dict = {"__doc__": f"``{st.op_name}``: {st.doc}.", "__module__": __name__}
    for spec in st.operands:
        any_type = spec.kind == "scalar" or (st.name, spec.name) in ANY_OPERANDS
        t = Operand[Any] if any_type else Operand[ir.RankedTensorType]
        notes[spec.name] = Optional[t] if spec.optional else t
    for spec in st.options:
        notes[attr_name(st, spec.name)] = _ATTR_TYPES[spec.type]
    for name in st.results:
        t = Result[ir.RankedTensorType]
        notes[name.rstrip("?")] = Optional[t] if name.endswith("?") else t
        namespace[name.rstrip("?")] = result()
    clash = set(notes) & {n for n in dir(ir.OpView) if not n.startswith("_")}
    assert not clash, f"{st.op_name}: field names shadow OpView members: {clash}"
    namespace["__annotations__"] = notes
    namespace["verify_invariants"] = _verify_hook
    return type(_class_name(st), (QF.Operation,), namespace, name=st.name, traits=[Pure])


def _verify_hook(self) -> bool:
    """``verify_invariants`` of every qf op: run its verifier, report at the op's location."""
    op_name = self.operation.name
    try:
        OP_VERIFIERS[op_name](self)
    except StageError as e:
        where = f" (operand {e.arg})" if e.arg and e.arg in _operand_names(op_name) else ""
        self.location.emit_error(f"{op_name}: {e.message}{where}")
        return False
    except Exception as e:  # a verifier bug must not escape into MLIR
        self.location.emit_error(f"{op_name}: internal verifier error: {type(e).__name__}: {e}")
        return False
    return True


def _operand_names(op_name: str) -> set:
    return {o.name for o in STAGES[op_name[3:]].operands}


# ---------------------------------------------------------------- op inspection
def op_class(stage_name: str) -> type:
    """The op class of a stage (``op_class("norm")`` is ``NormOp``)."""
    return OP_CLASSES[stage_name]


def stage_of(op) -> Optional[Stage]:
    """The catalog stage of a ``qf.*`` op, or None for any other op."""
    name = op.operation.name
    return STAGES.get(name[3:]) if name.startswith("qf.") else None


def op_options(op) -> dict:
    """``{option: python value}`` decoded from a qf op's attributes (catalog names)."""
    st = stage_of(op)
    attrs = op.operation.attributes
    out = {}
    for spec in st.options:
        key = attr_name(st, spec.name)
        if key not in attrs:
            raise StageError(f"missing option attribute {key}", spec.name)
        out[spec.name] = option_value(spec, attrs[key])
    return out


def op_operands(op) -> dict:
    """``{operand: ir.Value | None}`` in catalog order (None: optional and absent)."""
    view = op.operation.opview
    return {spec.name: getattr(view, spec.name) for spec in stage_of(op).operands}


def op_results(op) -> dict:
    """``{result: ir.Value | None}`` in catalog order (names without ``?``)."""
    view = op.operation.opview
    return {n.rstrip("?"): getattr(view, n.rstrip("?")) for n in stage_of(op).results}


# --------------------------------------------------------------------- verifiers
def _checked_type(t: ir.Type, names: Optional[tuple] = None, arg: Optional[str] = None):
    """The verifier's view of an MLIR type: static dims exact, every dynamic dim an
    UnknownDim (labelled with its ``qf.dims`` name when there is one, for messages)."""
    vt = value_type(t, arg=arg)
    if names is None or not isinstance(vt, TensorType) or len(names) != vt.rank:
        return vt
    return TensorType(vt.dtype, tuple(UnknownDim(str(n)) if isinstance(d, UnknownDim) else d
                                      for d, n in zip(vt.shape, names)))


def _arg_dims(arg) -> Optional[tuple]:
    """``qf.dims`` of a function argument, when the block belongs to a ``func.func``."""
    owner = arg.owner.owner
    if owner is None or owner.operation.name != "func.func":
        return None
    attrs = owner.operation.attributes
    arg_attrs = attrs["arg_attrs"] if "arg_attrs" in attrs else None
    if arg_attrs is None or arg.arg_number >= len(arg_attrs):
        return None
    d = arg_attrs[arg.arg_number]
    return dims_from_attr(d[DIMS_ATTR]) if DIMS_ATTR in d else None


def _traced_type(value, memo: dict, arg: Optional[str] = None):
    """The type of an SSA value, refined by its producing qf op's inferred type.

    ``memo`` maps values to their types (or to the StageError their IR type gives);
    a miss fills it for every value upstream, iteratively (see :func:`_trace`).
    A bad type raises here, naming ``arg``.
    """
    if value not in memo:
        _trace(value, memo)
    t = memo[value]
    if isinstance(t, StageError):
        raise StageError(t.message, arg)
    return t


def _trace(value, memo: dict) -> None:
    """Fill ``memo`` for ``value`` and everything it depends on, producers first.

    An explicit stack instead of recursion: a chain of thousands of stages neither
    overflows Python's stack nor costs more than one inference per op (with a memo
    shared over a whole verification, see :func:`shared_inference`).
    """
    stack, visiting = [(value, False)], set()
    while stack:
        v, operands_done = stack.pop()
        if v in memo:
            continue
        producer = _qf_producer(v)
        if producer is None or (not operands_done and v in visiting):
            memo[v] = _own_type(v)      # an argument, or a use cycle (dominance rejects it)
        elif not operands_done:
            visiting.add(v)
            stack.append((v, True))
            stack.extend((o, False) for o in op_operands(producer).values()
                         if o is not None and o not in memo)
        else:
            _trace_results(producer, memo)


def _qf_producer(value):
    """The qf op whose result ``value`` is, or None (arguments, other ops' results)."""
    if isinstance(value, ir.OpResult) and stage_of(value.owner) is not None:
        return value.owner
    return None


def _own_type(value):
    """The checked type of a value as the IR states it (a StageError when it has none)."""
    try:
        dims = _arg_dims(value) if isinstance(value, ir.BlockArgument) else None
        return _checked_type(value.type, dims)
    except StageError as e:
        return e


def _trace_results(producer, memo: dict) -> None:
    """Memoise every result of a qf op whose operands are memoised: its IR type,
    refined by the op's inference (unrefined when the op would not verify)."""
    try:
        inferred = dict(_infer(producer, memo))
    except StageError:
        inferred = {}
    for name, r in op_results(producer).items():
        if r is not None:
            own = _own_type(r)
            memo[r] = own if isinstance(own, StageError) else _refined(own, inferred.get(name))


def _refined(actual, inferred):
    """Static dims from the IR, the others from the inference (when dtype/rank agree)."""
    if not (isinstance(inferred, TensorType) and isinstance(actual, TensorType)
            and inferred.dtype == actual.dtype and inferred.rank == actual.rank):
        return actual
    return TensorType(actual.dtype, tuple(a if a.is_const else i
                                          for a, i in zip(actual.shape, inferred.shape)))


def _infer(op, memo: dict) -> list:
    """Check options and operand kinds, then run the stage's infer rule."""
    st = stage_of(op)
    opts = op_options(op)
    args = {}
    operands = op_operands(op)
    for spec in st.operands:
        v = operands[spec.name]
        if v is None:
            continue
        args[spec.name] = t = _traced_type(v, memo, spec.name)
        if spec.kind == "scalar" and not isinstance(t, ScalarType):
            raise StageError(f"{spec.name} must be a scalar, got {t}", spec.name)
    opts = resolve_options(st, args, opts)
    return infer_results(st, args, opts)


def _dims_differ(want, got) -> bool:
    """Provably different: both constants and unequal (UnknownDims equal everything)."""
    return want.is_const and got.is_const and want.value != got.value


_SHARED = threading.local()


@contextlib.contextmanager
def shared_inference():
    """Share one memo of traced types between the verifiers of every op checked inside.

    Verifying op by op with a fresh memo re-infers the whole chain above each op
    (quadratic in the chain length). Inside this block the IR must not change (values
    are memo keys); :func:`qfuse.dialect.text.verify` and ``parse_module`` use it.
    """
    outer = getattr(_SHARED, "memo", None)
    _SHARED.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _SHARED.memo = outer


def verify_stage(st: Stage, op) -> None:
    """The checks shared by every stage; raises StageError naming the bad part."""
    shared = getattr(_SHARED, "memo", None)
    inferred = dict(_infer(op, {} if shared is None else shared))
    for name, actual in op_results(op).items():
        want = inferred.get(name)
        if (want is None) != (actual is None):
            raise StageError(f"result {name!r} must be "
                             f"{'absent' if want is None else 'present'} here")
        if want is None:
            continue
        got = _checked_type(actual.type)
        shape_bad = isinstance(want, TensorType) and isinstance(got, TensorType) and (
            want.rank != got.rank or any(map(_dims_differ, want.shape, got.shape)))
        if type(want) is not type(got) or want.dtype != got.dtype or shape_bad:
            raise StageError(f"result {name!r} must be {want}, got {got}")


def _stage_verifier(st: Stage):
    def verify(op) -> None:
        verify_stage(st, op)
    verify.__name__ = verify.__qualname__ = f"verify_{st.name}"
    verify.__doc__ = f"Verify a ``{st.op_name}`` op: options, operand types, result types."
    return verify


#: One op class per stage: ``OP_CLASSES["norm"]`` is ``NormOp`` (``qf.norm``).
OP_CLASSES: dict = {st.name: _make_op_class(st) for st in STAGES.values()}
#: ``op name -> verify_<stage>(op)``; each raises StageError on invalid IR.
OP_VERIFIERS: dict = {st.op_name: _stage_verifier(st) for st in STAGES.values()}

register_dialect_module("qf", sys.modules[__name__])

globals().update({cls.__name__: cls for cls in OP_CLASSES.values()})
globals().update({fn.__name__: fn for fn in OP_VERIFIERS.values()})
__all__ += [cls.__name__ for cls in OP_CLASSES.values()]
__all__ += [fn.__name__ for fn in OP_VERIFIERS.values()]


def make_context() -> ir.Context:
    """A fresh Context with ``qf`` loaded (``func``/``arith`` are registered upstream).

    Multithreading is off: verifiers are Python callbacks, and qfuse modules are small.
    """
    ctx = ir.Context()
    ctx.enable_multithreading(False)
    ctx.allow_unregistered_dialects = False
    with ctx, ir.Location.unknown():
        for name in ("func", "arith"):
            ctx.dialects[name]                     # loads it (registered upstream)
        QF.load()
    return ctx
