"""The layering rule: dsl -> dialect -> passes -> backends -> runtime; no import cycles.

`qfuse/dialect` imports no other qfuse package (but qfuse.errors); a backend imports
only qfuse.dialect, qfuse.errors, qfuse.backends.base and its own package (the runtime
may call any layer). No two qfuse modules import each other, directly or through others,
not even lazily: an import inside a function is a dependency all the same. Checked on
the source with `ast`, so a violation fails here.
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "qfuse"

ALLOWED = {
    "dialect": {"dialect", "errors"},
    "backends": {"dialect", "errors", "backends"},
    "dsl": {"dsl", "dialect", "errors"},
    "passes": {"passes", "dialect", "dsl", "errors"},
}


def _qfuse_imports(path: Path) -> set:
    rel = path.relative_to(PKG).parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                parts = base + (node.module.split(".") if node.module else [])
                if node.module is None:          # from . import x
                    parts += [a.name for a in node.names]
                out.add(parts[0] if parts else "")
            elif node.module and node.module.startswith("qfuse."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("qfuse.")}
    return out


def test_layers_import_only_what_is_below_them():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (PKG / layer).rglob("*.py"):
            extra = _qfuse_imports(path) - allowed
            if extra:
                bad.append(f"{path.relative_to(PKG)} imports {sorted(extra)}")
    assert not bad, "\n".join(bad)


def _imports_wheel(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n.split(".")[0] in ("torch_mlir", "flydsl") for n in names):
            return True
    return False


def test_only_one_module_imports_the_bindings_wheel():
    users = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if _imports_wheel(p)]
    assert users == ["dialect/mlir.py"]


# ---------------------------------------------------------------- import cycles
#: Cycles that are being removed by their owners. The list may only shrink: each entry
#: must still be a cycle (an import cycle's modules, exactly), and any other cycle fails.
KNOWN_CYCLES = []


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict:
    """``{module: {modules it imports}}`` for the package at ``root``: every ``import`` and
    ``from ... import`` anywhere in a module (in functions too), resolved to the module it
    names (``from pkg import mod`` names ``pkg.mod`` when that is a module, else ``pkg``;
    a name below a module resolves to the module). Imports from outside are left out."""
    files = {_module_name(root, p): p for p in root.rglob("*.py")}
    top = root.name

    def resolve(name: str) -> str:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names
                         if a.name == top or a.name.startswith(top + ".")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target != top and not target.startswith(top + "."):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in files else resolve(target))
        deps.discard(mod)
        deps.discard("")
        graph[mod] = deps
    return graph


def import_cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), as sets."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _chain(graph: dict, comp: set) -> str:
    """One cycle through ``comp``, as ``a -> b -> a`` (what to break)."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w == start]
        if back or not nxt:
            return " -> ".join(path + [start])
        fresh = [w for w in nxt if w not in seen]
        w = fresh[0] if fresh else nxt[0]
        if w in seen:
            return " -> ".join(path[path.index(w):] + [w])
        path.append(w)
        seen.add(w)


def test_no_import_cycles():
    graph = import_graph(PKG)
    cycles = import_cycles(graph)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, "import cycles (move what both sides need below them):\n" + "\n".join(
        _chain(graph, c) for c in new)
    gone = [sorted(k) for k in KNOWN_CYCLES if k not in cycles]
    assert not gone, f"no longer cycles: remove them from KNOWN_CYCLES: {gone}"


def test_the_cycle_finder_counts_lazy_imports(tmp_path):
    pkg = tmp_path / "qfuse"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import f\n")
    (pkg / "a.py").write_text("def g():\n    from .sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from qfuse.a import g as f\n")
    (pkg / "c.py").write_text("import qfuse.sub.b.f\nfrom . import a\n")
    graph = import_graph(pkg)
    assert graph["qfuse.a"] == {"qfuse.sub.b"} and graph["qfuse.sub"] == {"qfuse.sub.b"}
    assert graph["qfuse.c"] == {"qfuse.sub.b", "qfuse.a"}
    assert import_cycles(graph) == [{"qfuse.a", "qfuse.sub.b"}]
    assert _chain(graph, {"qfuse.a", "qfuse.sub.b"}) == "qfuse.a -> qfuse.sub.b -> qfuse.a"


# ---------------------------------------------------------------- the Triton backend's layers
TRITON = "qfuse.backends.triton"
DEVICE_LIBRARY = {f"{TRITON}.{m}" for m in ("numerics", "numerics_codes", "numerics_trace", "lib")}


def _imports_triton(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n.split(".")[0] == "triton" for n in names):
            return True
    return False


def test_triton_backend_layers():
    """codegen/ and launch/ never import each other (nor run.py); the device library
    imports only itself and the adapter; in the backend only those import triton itself
    (the rest of qfuse uses its public API: the version, triton.testing)."""
    graph = import_graph(PKG)
    layer = {"codegen": f"{TRITON}.codegen", "launch": f"{TRITON}.launch"}
    bad = []
    for mod, deps in graph.items():
        mine = {d for d in deps if d.startswith(TRITON + ".")}
        if mod.startswith(layer["codegen"]):
            bad += [f"{mod} -> {d}" for d in mine if not d.startswith(layer["codegen"])
                    and d != f"{TRITON}.kernel"]
        elif mod.startswith(layer["launch"]):
            bad += [f"{mod} -> {d}" for d in mine if d.startswith(layer["codegen"])
                    or d == f"{TRITON}.run"]
        elif mod in DEVICE_LIBRARY:
            bad += [f"{mod} -> {d}" for d in deps
                    if d not in DEVICE_LIBRARY | {f"{TRITON}.triton_adapter"}]
    assert not bad, "\n".join(sorted(bad))
    users = sorted(_module_name(PKG, p) for p in (PKG / "backends" / "triton").rglob("*.py")
                   if _imports_triton(p))
    assert set(users) == DEVICE_LIBRARY | {f"{TRITON}.triton_adapter"}, users
