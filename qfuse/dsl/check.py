"""Type-check a parsed pipeline against the stage catalog, producing a TypedPipeline.

Every call is resolved against ``qfuse.dialect.stages.STAGES``: positional arguments
bind to ``Stage.positional`` in order, keywords name an operand or an option;
``resolve_options`` fills every default and ``infer_results`` gives the result types.
A :class:`~qfuse.dialect.stages.StageError` becomes a :class:`DSLTypeError` located
at the argument it names (or at the call). ``a + b`` / ``a * b`` are the ``add`` /
``mul`` stages; numeric literals used as operands become f32 constants.

``round`` inherits ``granularity`` and ``dtype_max`` from the ``scale`` call that
produced its ``s`` (explicit values win; contradicting an explicit one is an error);
``dequant`` inherits ``granularity`` the same way (the options a stage has are the ones
it inherits); a parameter ``s: f32[1]`` means a static per-tensor scale.

Rules that need the whole program, not one call: a parameter that ``cache_write``
updates in place has no other use. Sizes (stage count, derived-dim nesting, f32 constants) are bounded by
``limits.py``.

What a rule needs to know about a stage is in the catalog: its infix operator, operands
that take number literals or a default, the ``s[ids]`` subscript, the stage an operand
comes from and the options it inherits from it (``OperandSpec.made_by`` / ``inherits``)
and its in-place results.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional

from ..dialect.in_place import in_place_updates
from ..dialect.options import Granularity, QuantTarget
from ..dialect.stages import STAGES, Stage, StageError, infer_results, resolve_options
from ..dialect.types import DTYPE_ALIASES, DTYPES, Dim, ScalarType, TensorType, dtype
from ..errors import DSLTypeError, SourceLoc
from . import ast as A
from .limits import MAX_DIM_DEPTH, MAX_STAGES, check_f32, dim_depth
from .params import check_params
from ..dialect.typed import ConstInfo, ParamKind, StageCall, TypedPipeline, Value

__all__ = ["check_pipeline", "check_module"]

_BINARY_STAGES = {st.infix: st for st in STAGES.values() if st.infix}
_LITERALS = (A.Number, A.Bool, A.String)
_OPTION_WORDS = {str(choice) for st in STAGES.values() for o in st.options for choice in o.choices
                 if o.type in ("enum", "dtype")} | set(DTYPES) | set(DTYPE_ALIASES)


def check_module(module: A.ModuleAST) -> list:
    """Check every pipeline of a module, in order; pipeline names must be unique."""
    first_seen: dict = {}
    typed = []
    for pipe in module.pipelines:
        if pipe.name in first_seen:
            raise DSLTypeError(f"duplicate pipeline name '{pipe.name}' (first defined at line "
                               f"{first_seen[pipe.name].line})", pipe.loc)
        first_seen[pipe.name] = pipe.loc
        typed.append(check_pipeline(pipe))
    return typed


def check_pipeline(pipe: A.PipelineDef) -> TypedPipeline:
    """Resolve names, stages, options and types of one pipeline; raise DSLTypeError on misuse.

    A definition with optional parameters or flags is checked once per variant
    (:mod:`qfuse.dsl.variants`); the variant with every optional given and every flag at
    its default is returned, the others hang off its ``family``."""
    from .variants import check_variants
    params = check_params(pipe.params)
    if not any(fp.kind != ParamKind.VALUE for _, fp in params):
        return _PipelineChecker(pipe, params).run()
    return check_variants(pipe, params, lambda choice: _PipelineChecker(pipe, params, choice))


@dataclass(frozen=True)
class Absent:
    """The value of ``None`` in a variant: an absent optional parameter, a ``None``, a
    result its call did not produce. ``why`` says what made it absent, for messages."""
    why: str


@dataclass(frozen=True)
class Flag:
    """A flag parameter's value in a variant (``shuffle: bool = false``)."""
    name: str
    value: bool


def _close_match(word: str, choices) -> Optional[str]:
    got = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{got[0]}'?" if got else None


def _literal_kind(node) -> str:
    return {A.Number: "a number", A.Bool: "a boolean", A.String: "a string"}.get(type(node),
                                                                               "an expression")


class _PipelineChecker:
    """Walks one PipelineDef in program order, building SSA values and stage calls.

    ``params``: :func:`check_params` of its parameters; ``choice``: the variant, one bool
    per optional parameter (given) and flag (its value)."""

    def __init__(self, pipe: A.PipelineDef, params: list, choice: Optional[dict] = None):
        self.pipe, self.params, self.choice = pipe, params, choice or {}
        self.slots: list = []             # (label, Value or None) per returned expression
        self.unpacked: dict = {}          # id(StageCall) -> its targets' values (Absent too)
        self.env: dict = {}               # name -> Value / Absent / Flag, as assigned so far
        self.param_ids: set = set()       # id(Value) of parameters
        self.consts: list = []
        self.calls: list = []
        self.producer: dict = {}          # id(Value) -> StageCall that made it
        self.explicit: dict = {}          # id(StageCall) -> option names the user wrote
        self.first_assigned: dict = {}    # name -> SourceLoc of its (first) assignment
        self.taken: set = set()           # every user name, so generated names avoid them
        self.counters: dict = {}
        self.uses: list = []              # (Value, StageCall, operand name, SourceLoc)

    # ------------------------------------------------------------------ driver
    def run(self) -> TypedPipeline:
        pipe = self.pipe
        params = []
        for info, fp in self.params:
            if fp.kind == ParamKind.FLAG:
                self.env[fp.name] = Flag(fp.name, self.choice[fp.name])
            elif fp.kind == ParamKind.OPTIONAL and not self.choice[fp.name]:
                self.env[fp.name] = Absent(f"'{fp.name}' is None")
            else:
                params.append(info)
                self.env[fp.name] = info.value
                self.param_ids.add(id(info.value))
        self.taken = set(self.env)
        for stmt in pipe.body:
            if isinstance(stmt, A.Assign):
                for target in stmt.targets:
                    self.first_assigned.setdefault(target.id, target.loc)
                    self.taken.add(target.id)
        returned = None
        for stmt in pipe.body:
            if returned is not None:
                what = "a second 'return'" if isinstance(stmt, A.Return) else "a statement"
                raise DSLTypeError(f"{what} after 'return' (line {returned.loc.line}); "
                                   f"'return' must be the last statement", stmt.loc)
            if isinstance(stmt, A.Assign):
                self._assign(stmt)
            else:
                returned = stmt
        if returned is None:
            raise DSLTypeError(f"pipeline '{pipe.name}' has no 'return'", pipe.loc,
                               hint="end the body with: return <values>")
        self.slots = self._return(returned)
        present = [(v, node) for (_, v), node in zip(self.slots, returned.values) if v is not None]
        if not present:
            raise DSLTypeError("every value this pipeline returns is None here", returned.loc)
        self._check_in_place_writes([v for v, _ in present], [n for _, n in present])
        return TypedPipeline(pipe.name, params, self.consts, self.calls, [v for v, _ in present],
                             pipe.loc, return_names=[n for n, v in self.slots if v is not None])

    # -------------------------------------------------------------- statements
    def _assign(self, stmt: A.Assign) -> None:
        targets = stmt.targets
        for i, target in enumerate(targets):
            if any(t.id == target.id for t in targets[:i]):
                raise DSLTypeError(f"'{target.id}' appears twice on the left of '='", target.loc)
            if any(fp.name == target.id for _, fp in self.params):
                raise DSLTypeError(f"cannot assign to parameter '{target.id}'", target.loc,
                                   hint="pick a new name; parameters are read-only")
            if target.id in self.env:
                first = self.first_assigned.get(target.id)
                line = f" (line {first.line})" if first is not None else ""
                raise DSLTypeError(f"'{target.id}' is already assigned{line}; each name is "
                                   f"assigned once", target.loc)
        value = self._select(stmt.value)
        if isinstance(value, (A.Call, A.BinOp)):
            call = self._stage_call(value, targets)
            values = self.unpacked.pop(id(call), call.results)
        elif len(targets) != 1:
            raise DSLTypeError(f"cannot unpack one value into {len(targets)} names", stmt.loc)
        elif isinstance(value, A.Number):
            values = [self._const(value, name=targets[0].id, loc=targets[0].loc)]
        elif isinstance(value, (A.Name, A.NoneLit)):
            values = [self._value(value)]             # an alias: the same value
        else:
            raise DSLTypeError(f"cannot assign {_literal_kind(value)}; assign a stage call, "
                               f"a name or a number", value.loc)
        for target, val in zip(targets, values):
            self.env[target.id] = val

    def _return(self, stmt: A.Return) -> list:
        """``(label, Value or None)`` per returned expression: None where the value is absent
        in this variant (the caller gets None there); the label is the returned name, or
        the value's own name (None for an absent value that has no name)."""
        slots = []
        for expr in stmt.values:
            label = expr.id if isinstance(expr, A.Name) else None
            chosen = self._select(expr)
            if not isinstance(chosen, (A.Name, A.Call, A.BinOp, A.NoneLit)):
                raise DSLTypeError(f"return values must be tensors (names or stage calls), "
                                   f"got {_literal_kind(chosen)}", chosen.loc)
            value = self._value(chosen)
            if isinstance(value, Absent):
                if not self.choice:
                    raise DSLTypeError(f"this return value is always None ({value.why}): a "
                                       f"pipeline without optional parameters or flags returns "
                                       f"tensors", chosen.loc)
                slots.append((label, None))
                continue
            name = label or value.name
            if isinstance(value, Flag) or not isinstance(value.type, TensorType):
                what = "the flag" if isinstance(value, Flag) else f"a scalar {value.type}"
                raise DSLTypeError(f"return values must be tensors; '{name}' is {what}",
                                   expr.loc)
            slots.append((name, value))
        return slots

    # ------------------------------------------------------------------ values
    def _select(self, node):
        """The branch of ``a if cond else b`` (nested) this variant takes; other nodes as
        they are."""
        while isinstance(node, A.IfExpr):
            node = node.then if self._holds(node.cond) else node.other
        return node

    def _holds(self, cond: A.Cond) -> bool:
        """Whether an IfExpr's condition holds in this variant: a flag's value, a value's
        presence (a name that is a tensor or scalar is present, None is not)."""
        v = self._lookup(A.Name(cond.loc, cond.name))
        if isinstance(v, Flag):
            if cond.test in (A.CondTest.NONE, A.CondTest.NOT_NONE):
                raise DSLTypeError(f"'{cond.name}' is a flag (true or false), never None",
                                   cond.loc, hint=f"test it as: a if {cond.name} else b")
            truth = v.value
        else:
            truth = not isinstance(v, Absent)
        return truth if cond.test in (A.CondTest.TRUE, A.CondTest.NOT_NONE) else not truth

    def _value(self, node):
        """The Value (or Absent, or Flag) of a name, ``None``, a stage call or an IfExpr."""
        node = self._select(node)
        if isinstance(node, A.NoneLit):
            return Absent("None")
        if isinstance(node, A.Name):
            return self._lookup(node)
        return self._single_value(node)

    def _lookup(self, node: A.Name) -> Value:
        name = node.id
        if name in self.env:
            return self.env[name]
        if name in self.first_assigned:
            raise DSLTypeError(f"'{name}' is used before it is assigned (line "
                               f"{self.first_assigned[name].line})", node.loc)
        if name in STAGES:
            raise DSLTypeError(f"'{name}' is a stage; call it: {name}(...)", node.loc)
        raise DSLTypeError(f"undefined name '{name}'", node.loc,
                           hint=_close_match(name, self.env))

    def _fresh(self, base: str) -> str:
        while True:
            n = self.counters.get(base, 0)
            self.counters[base] = n + 1
            name = f"{base}_{n}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def _const(self, node: A.Number, name: Optional[str] = None,
               loc: Optional[SourceLoc] = None) -> Value:
        literal = check_f32(node.value, node.loc, "constant")
        value = Value(name or self._fresh("const"), ScalarType(dtype("f32")), loc or node.loc)
        self.consts.append(ConstInfo(value, literal))
        return value

    def _single_value(self, node) -> Value:
        call = self._stage_call(node, None)
        if len(call.results) != 1:
            raise DSLTypeError(f"{call.stage} returns {len(call.results)} values "
                               f"({', '.join(call.result_names)}); assign them to names first",
                               node.loc, hint=f"a, b = {call.stage}(...)")
        return call.results[0]

    def _operand(self, st: Stage, name: str, node):
        """The value of one operand argument (a name, a nested call, a literal, None, an
        IfExpr): a Value, or Absent for an optional operand that is None in this variant."""
        spec = st.operand(name)
        node = self._select(node)
        if isinstance(node, A.Index):
            raise DSLTypeError(f"indexing '{node.value.id}[{node.index.id}]' is only allowed as "
                               f"smooth's scale: smooth(x, s[ids])", node.loc)
        if isinstance(node, A.Number) and (spec.kind == "scalar" or spec.literal):
            return self._const(node)
        if isinstance(node, _LITERALS):
            raise DSLTypeError(f"operand {name} of {st.name} must be a tensor, got "
                               f"{_literal_kind(node)}", node.loc)
        if isinstance(node, A.Name) and node.id in _OPTION_WORDS and node.id not in self.env \
                and node.id not in self.first_assigned:
            raise DSLTypeError(f"{st.name} expects a tensor for its operand '{name}' here, not "
                               f"the option value '{node.id}'", node.loc,
                               hint=f"{st.name}'s positional arguments: {', '.join(st.positional)}")
        value = self._value(node)
        if isinstance(value, Absent):
            if spec.optional or spec.default is not None:
                return value                   # left out (an operand with a default takes it)
            raise DSLTypeError(f"{st.name} needs its operand {name}, and it is None here "
                               f"({value.why})", node.loc,
                               hint=f"choose a value for this variant: "
                                    f"{st.name}(...) if <name> is not None else ...")
        if isinstance(value, Flag):
            raise DSLTypeError(f"'{value.name}' is a flag (true or false), not an operand: use "
                               f"it in a condition (a if {value.name} else b) or as a bool "
                               f"option", node.loc)
        if spec.kind == "scalar" and not isinstance(value.type, ScalarType):
            raise DSLTypeError(f"{name} of {st.name} takes a scalar (a scalar parameter or a "
                               f"number), got {value.type}", node.loc)
        return value

    # ------------------------------------------------------------------- calls
    def _bind(self, st: Stage, node) -> tuple:
        """Split a call's arguments into operand and option expressions (with locations)."""
        if isinstance(node, A.BinOp):
            return {"a": node.left, "b": node.right}, {}
        operands, options = {}, {}
        positional = st.positional
        if len(node.args) > len(positional):
            raise DSLTypeError(f"{st.name}() takes at most {len(positional)} positional "
                               f"arguments ({', '.join(positional)}), got {len(node.args)}",
                               node.args[len(positional)].loc,
                               hint="pass options by name, e.g. zero=floor")
        for name, arg in zip(positional, node.args):
            (operands if st.operand(name) else options)[name] = arg
        for kw in node.kwargs:
            is_operand, is_option = st.operand(kw.name) is not None, st.option(kw.name) is not None
            if is_operand and is_option:     # e.g. cache_write's operand x and option x
                is_operand = kw.name not in operands and not isinstance(kw.value, _LITERALS)
            if not (is_operand or is_option):
                known = ", ".join(o.name for o in st.options) or "none"
                ops = ", ".join(o.name for o in st.operands)
                raise DSLTypeError(f"unknown option '{kw.name}' for {st.name} (options: {known};"
                                   f" operands: {ops})", kw.loc,
                                   hint=_close_match(kw.name, [o.name for o in st.options] +
                                                     [o.name for o in st.operands]))
            bound = operands if is_operand else options
            if kw.name in bound:
                kind = "operand" if is_operand else "option"
                raise DSLTypeError(f"{kind} '{kw.name}' given twice", kw.loc)
            bound[kw.name] = kw.value
        for spec in st.operands:
            index = operands.get(spec.name)
            if spec.subscript and isinstance(index, A.Index):
                if spec.subscript in operands:
                    raise DSLTypeError(f"operand '{spec.subscript}' given twice (also as "
                                       f"{spec.name}[{spec.subscript}])", index.loc)
                operands[spec.name], operands[spec.subscript] = index.value, index.index
        return operands, options

    def _option_value(self, spec_type: str, name: str, node):
        node = self._select(node)
        if isinstance(node, _LITERALS):
            return node.value
        if isinstance(node, A.Name):
            flag = self.env.get(node.id)
            if isinstance(flag, Flag) and spec_type == "bool":
                return flag.value             # a flag is compile-time: it may set a bool option
            if spec_type in ("float", "int", "bool") and node.id in self.env:
                raise DSLTypeError(f"option {name} is compile-time: give a literal, not "
                                   f"'{node.id}'", node.loc)
            return node.id
        raise DSLTypeError(f"option {name} takes a literal value (a word or a number), got "
                           f"an expression", node.loc)

    def _stage_call(self, node, targets: Optional[tuple]) -> StageCall:
        if isinstance(node, A.BinOp):
            st = _BINARY_STAGES[node.op]
        elif node.func in STAGES:
            st = STAGES[node.func]
        else:
            raise DSLTypeError(f"unknown stage '{node.func}'", node.loc,
                               hint=_close_match(node.func, STAGES) or
                               f"stages: {', '.join(STAGES)}")
        operand_nodes, option_nodes = self._bind(st, node)
        where = {name: n.loc for name, n in {**operand_nodes, **option_nodes}.items()}
        values, absent = {}, {}
        for name, n in operand_nodes.items():
            v = self._operand(st, name, n)
            if isinstance(v, Absent):
                absent[name] = v.why           # an optional operand that is None here
            else:
                values[name] = v
        for spec in st.operands:
            if spec.default is not None and spec.name not in values:
                values[spec.name] = self._const(A.Number(node.loc, spec.default))
        opts = {}
        for name, n in option_nodes.items():
            spec = st.option(name)
            opts[name] = self._option_value(spec.type if spec else "", name, n)
        explicit = set(opts)
        for spec in st.operands:
            if spec.inherits and spec.name in values:
                self._inherit_options(st, spec, values[spec.name], opts, where,
                                      operand_nodes)
        args = {name: v.type for name, v in values.items()}
        try:
            resolved = resolve_options(st, args, opts)
            results = infer_results(st, args, resolved)
            resolved = {**{o.name: resolved[o.name] for o in st.options if o.name in resolved},
                        **resolved}            # declared order, so printed IR is stable
        except StageError as err:
            raise DSLTypeError(err.message, where.get(err.arg, node.loc)) from None
        self._check_size(st, results, node.loc)
        result_names = [name for name, _ in results]
        declared = [r.rstrip("?") for r in st.results]
        unpacked = None
        if targets is not None and len(targets) != len(results):
            n = len(targets)
            if not (absent and n == len(declared)):
                raise DSLTypeError(f"{st.name} returns {len(results)} value"
                                   f"{'s' if len(results) != 1 else ''} "
                                   f"({', '.join(result_names)}) but {n} name"
                                   f"{'s are' if n != 1 else ' is'} assigned", targets[0].loc)
            # an optional result its call does not produce here (a norm's residual_out when
            # the residual is None) is None in this variant
            why = f"{st.name} has no {{}} here: {'; '.join(absent.values())}"
            types = dict(results)
            unpacked = [Value(t.id, types[r], t.loc) if r in types else Absent(why.format(r))
                        for t, r in zip(targets, declared)]
            result_values = [v for v in unpacked if isinstance(v, Value)]
        elif targets is not None:
            result_values = [Value(t.id, ty, t.loc) for t, (_, ty) in zip(targets, results)]
        else:
            base = self._fresh(st.name)
            result_values = [Value(base if len(results) == 1 else f"{base}_{name}", ty, node.loc)
                             for name, ty in results]
        call = StageCall(st.name, {o.name: values.get(o.name) for o in st.operands}, resolved,
                         result_values, node.loc, result_names=result_names)
        self.calls.append(call)
        self.uses += [(v, call, name, where.get(name, node.loc)) for name, v in values.items()]
        self.explicit[id(call)] = explicit
        for value in result_values:
            self.producer[id(value)] = call
        if unpacked is not None:
            self.unpacked[id(call)] = unpacked
        return call

    def _check_size(self, st: Stage, results: list, loc: SourceLoc) -> None:
        """Bound the stage count and the nesting of derived dims (see ``limits.py``)."""
        if len(self.calls) >= MAX_STAGES:
            raise DSLTypeError(f"more than {MAX_STAGES} stages in one pipeline", loc,
                               hint="split it into several pipelines")
        for name, t in results:
            deep = isinstance(t, TensorType) and max(map(dim_depth, t.shape), default=0)
            if deep and deep > MAX_DIM_DEPTH:
                raise DSLTypeError(f"the {name} shape of {st.name} nests more than "
                                   f"{MAX_DIM_DEPTH} dim expressions deep ({t})", loc)

    def _check_in_place_writes(self, returns: list, return_nodes: tuple) -> None:
        """A parameter that a stage updates in place (a cache_write's cache, and its scales
        when it returns new ones) belongs to that call: any other read, a second write or
        returning the parameter itself would see the old or the new contents depending
        on kernel order, so it must go through the call's result."""
        writer: dict = {}                 # id(parameter Value) -> (StageCall, operand)
        for call, operand, v, _ in in_place_updates(self.calls):
            if id(v) in self.param_ids:
                writer.setdefault(id(v), (call, operand))
        uses = self.uses + [(v, None, "return", n.loc) for v, n in zip(returns, return_nodes)]
        for value, call, operand, loc in uses:
            owner = writer.get(id(value))
            if owner is not None and not (owner[0] is call and owner[1] == operand):
                stage = owner[0].stage
                raise DSLTypeError(f"'{value.name}' is updated in place by the {stage} at "
                                   f"line {owner[0].loc.line}; it cannot also be "
                                   f"{'returned' if call is None else 'read here'}", loc,
                                   hint=f"use that {stage}'s result instead")

    def _inherit_options(self, st: Stage, spec, s: Value, opts: dict, where: dict,
                         operand_nodes: dict) -> None:
        """Fill granularity (and dtype_max, for a stage with that option) from what made
        ``s`` (``spec.made_by``, see the module doc)."""
        s_loc = operand_nodes[spec.name].loc
        maker = self.producer.get(id(s))
        if maker is not None and maker.stage == spec.made_by:
            self._inherit_from_scale(st, maker, opts, where, s_loc)
        elif "granularity" not in opts:
            opts["granularity"] = self._static_scale_granularity(st, s, s_loc)
            where["granularity"] = s_loc

    def _inherit_from_scale(self, st: Stage, maker: StageCall, opts: dict, where: dict,
                            s_loc: SourceLoc) -> None:
        made, at = maker.options, f"line {maker.loc.line}"
        target = opts.get("dtype")
        if isinstance(target, str) and (target in DTYPES or target in DTYPE_ALIASES):
            target = dtype(target).name
        if target in tuple(QuantTarget) and target != made["dtype"]:
            raise DSLTypeError(f"round to {target} with a scale computed for {made['dtype']} "
                               f"({at})", where.get("dtype", s_loc))
        gran = opts.setdefault("granularity", made["granularity"])
        where.setdefault("granularity", s_loc)
        if gran in tuple(Granularity) and gran != made["granularity"]:
            raise DSLTypeError(f"granularity={gran} does not match the scale s, computed "
                               f"{made['granularity']} ({at})", where["granularity"])
        if st.option("dtype_max") is None:
            return                      # a stage without the option (dequant) takes none
        if "dtype_max" not in opts:
            opts["dtype_max"], where["dtype_max"] = made["dtype_max"], s_loc
            return
        given = opts["dtype_max"]
        scale_gave_it = "dtype_max" in self.explicit[id(maker)]
        if scale_gave_it and isinstance(given, (int, float)) and float(given) != made["dtype_max"]:
            raise DSLTypeError(f"dtype_max={given} contradicts the scale's dtype_max="
                               f"{made['dtype_max']} ({at})", where["dtype_max"])

    def _static_scale_granularity(self, st: Stage, s: Value, s_loc: SourceLoc) -> str:
        """A scale parameter f32[1] is per_tensor, E8M0 bytes are mx (the one granularity
        with E8M0 scales); anything else needs granularity=."""
        t = s.type
        example = (f"e.g. {st.name}(" + ", ".join(st.positional[:2]) +
                   (", fp8_e4m3fn" if st.option("dtype_max") else "") +
                   ", granularity=per_token)")
        if id(s) not in self.param_ids:
            raise DSLTypeError("give granularity=: s is not computed by scale(...)", s_loc,
                               hint=example)
        if isinstance(t, TensorType) and t.dtype.name == "f32" and t.shape == (Dim(1),):
            return Granularity.PER_TENSOR
        if isinstance(t, TensorType) and t.dtype.name == "e8m0":
            return Granularity.MX
        raise DSLTypeError(f"give granularity= for a static scale (s is {t})", s_loc, hint=example)
