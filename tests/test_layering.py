"""The layering rule: dsl -> dialect -> passes -> backends -> runtime.

`qfuse/dialect` imports no other qfuse package (but qfuse.errors); a backend imports
only qfuse.dialect, qfuse.errors, qfuse.backends.base and its own package (the runtime
may call any layer). Checked on the source with `ast`, so a violation fails here.
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
