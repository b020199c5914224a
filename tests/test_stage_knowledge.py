"""Stage knowledge lives in the catalog and in each stage's own implementation.

``qfuse/dialect/`` holds the catalog (``stages.py``, ``options.py``, ``stage_rules.py``,
``requirements.py``, ``in_place.py``): there, stages and options are named freely.
Everywhere else, checked on the source with ``ast``:

* no option value is spelt as a string in a comparison or as a decision table's key:
  code uses the enums of ``qfuse.dialect.options`` (a misspelt member fails at import, a
  misspelt string never matches);
* a stage is named only by a module that implements it, the stages it registers a
  lowering or reference for (``RENDER``, ``STORE``, ``HANDLERS``, ...); any other module
  asks the catalog (``Stage`` fields, ``in_place_updates``, ``index_operands``).

And every catalog stage has a reference implementation and a Triton lowering.
"""
import ast
from pathlib import Path

from qfuse.dialect import options as opt
from qfuse.dialect.stages import STAGES

PKG = Path(__file__).resolve().parents[1] / "qfuse"

#: The registries a stage's implementation fills, keyed by stage name.
REGISTRIES = {"RENDER", "STORE", "NAT_BLOCK", "OUT_ROWS", "COMMENT_OPTIONS", "FLAT_OUTPUTS",
              "HANDLERS", "OPTION_KEYWORDS"}
#: Modules allowed to compare stage names or option strings, with what they name (none:
#: the passes ask the catalog too). An entry must still name exactly these.
KNOWN: dict = {}

# The value sets checked: every option enum but the dtype-valued ones, whose values are
# the type system's dtype names (qfuse.dialect.types), which storage tables, register
# kinds and tensor types spell as strings in their own right.
ENUMS = [e for e in vars(opt).values() if isinstance(e, type) and issubclass(e, opt.OptionEnum)
         and e not in (opt.OptionEnum, opt.QuantTarget, opt.FloatDType)]
OPTION_VALUES = {m.value for e in ENUMS for m in e}


def _strings(node) -> list:
    """String constants of ``node``: itself, or the elements of a literal tuple/list/set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def _registry(node) -> bool:
    return isinstance(node, ast.Name) and node.id in REGISTRIES


def registrations(tree) -> tuple:
    """``(stage names, registry dict nodes)``: what a module registers an implementation
    for, and the dict literals that do it (which name stages by design)."""
    names, tables = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _registry(node.value) and \
                isinstance(node.ctx, ast.Store):
            names |= set(_strings(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                _registry(node.func.value) and node.func.attr in ("update", "add"):
            for arg in node.args:
                if isinstance(arg, ast.Dict):
                    tables.add(arg)
                keys = arg.keys if isinstance(arg, ast.Dict) else [arg]
                names |= {s for k in keys if k is not None for s in _strings(k)}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_registry(t) for t in targets) and isinstance(node.value, ast.Dict):
                tables.add(node.value)
                names |= {s for k in node.value.keys if k is not None for s in _strings(k)}
    return names & set(STAGES), tables


def _table_keys(node: ast.Dict) -> list:
    """The keys of a dict literal that is a decision table over one option or over
    stages: two or more string keys, all values of one enum or all stage names (a dict
    that merely has a key spelt like a value, a schema's "default", is not one)."""
    keys = [(k.lineno, s) for k in node.keys if k is not None for s in _strings(k)]
    words = {s for _, s in keys}
    if len(words) < 2:
        return []
    if words <= set(STAGES) or any(words <= {m.value for m in e} for e in ENUMS):
        return keys
    return []


def named(tree, own: set, skip=()) -> list:
    """``(line, name)`` of every stage or option value a module names where it should ask
    the catalog: in a comparison, or as a decision table's key (``skip``: registry dicts)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                out += [(node.lineno, s) for s in _strings(side)
                        if s in OPTION_VALUES or (s in STAGES and s not in own)]
        elif isinstance(node, ast.Dict) and node not in skip:
            out += [(line, s) for line, s in _table_keys(node) if s not in own]
    return out


def _violations() -> dict:
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("dialect/"):
            continue
        tree = ast.parse(path.read_text())
        own, tables = registrations(tree)
        hits = named(tree, own, tables)
        if hits:
            found[rel] = hits
    return found


def test_stages_and_options_are_named_only_where_they_are_implemented():
    found = _violations()
    bad = {rel: hits for rel, hits in found.items() if rel not in KNOWN}
    assert not bad, "\n".join(
        f"qfuse/{rel}:{line}: {name!r}: ask the catalog (qfuse.dialect.stages / options)"
        for rel, hits in bad.items() for line, name in hits)
    for rel, names in KNOWN.items():
        now = {name for _, name in found.get(rel, [])}
        assert now == names, (f"qfuse/{rel} now names {sorted(now)}, KNOWN says "
                              f"{sorted(names)}: update (shrink) KNOWN")


def test_the_guard_finds_strings_and_tables():
    """The scanner flags a compared option string, a foreign stage name and a table keyed
    by option strings, and lets a module name the stages it registers."""
    src = '''
RENDER["pack"] = r_pack
def f(call, o):
    if call.stage == "pack":
        pass
    if call.stage in ("norm", "pack") or o["granularity"] == "mx":
        pass
    return {"roundup": 0, "even": 1}[o["e8m0"]] + {"mul": 0, "cdiv": 1}[o["op"]]
'''
    tree = ast.parse(src)
    own, tables = registrations(tree)
    assert own == {"pack"}
    assert sorted(n for _, n in named(tree, own, tables)) == ["even", "mx", "norm", "roundup"]


def test_every_stage_has_a_reference_and_a_triton_lowering():
    from qfuse.backends.reference.stages import HANDLERS
    from qfuse.backends.triton.codegen import render_kernel  # noqa: F401 (fills the tables)
    from qfuse.backends.triton.codegen.emit import RENDER, STORE
    assert set(HANDLERS) == set(STAGES)
    lowered = set(RENDER) | set(STORE)
    assert lowered <= set(STAGES), sorted(lowered - set(STAGES))
    assert set(STAGES) <= lowered, f"no Triton lowering: {sorted(set(STAGES) - lowered)}"
