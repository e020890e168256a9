"""The layers of the package, enforced on the source (an AST walk, no imports executed):

    cli       munit_rt/cli/                        parses and delegates: imports any layer, the torch side lazily
    runtime   munit_rt/ (the rest)                 never imports torch, torchvision, munit_rt.training or
                                                   munit_rt.export at module level (the torch backend imports
                                                   training inside functions); never export at all
    export    export/   -> munit_rt.export         may import training and the runtime
    training  training/ -> munit_rt.training       never imports the runtime or export, at any level, except
    shared    munit_rt/preprocess.py                 the one shared leaf (the preprocessing description)
and no import cycle, counting imports inside functions too, between these layers or inside any of them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"munit_rt": "munit_rt", "training": "munit_rt.training", "export": "munit_rt.export"}
SHARED_LEAVES = ("munit_rt.preprocess",)
HEAVY = ("torch", "torchvision")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    for prefix in ("munit_rt.training", "munit_rt.export", "munit_rt.cli"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    return "shared" if module in SHARED_LEAVES else "runtime"


def sources() -> dict[str, Path]:
    return {module_name(path): path for folder in FOLDERS for path in sorted((REPO / folder).rglob("*.py"))}


MODULES = sources()


def imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement of the file; `from a import b` names a.b
    too when that is a module of ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), top)  # annotations only
            elif isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base
                                                                                                      else []))
                found.append((base, top))
                found.extend((f"{base}.{alias.name}", top) for alias in child.names if f"{base}.{alias.name}" in MODULES)
            else:
                visit(child, top)

    visit(tree, True)
    return found


GRAPH = {module: imports(path, module) for module, path in MODULES.items()}


def test_every_folder_is_seen():
    assert {layer(m) for m in MODULES} == {"cli", "runtime", "training", "export", "shared"}
    assert "munit_rt.training.family" in MODULES and "munit_rt.bundle.schema" in MODULES


def test_the_runtime_never_imports_torch_training_or_export_at_module_level():
    offenders = [f"{module} imports {target}" for module, found in GRAPH.items()
                 if layer(module) in ("runtime", "cli", "shared")
                 for target, top in found if top and (target.split(".")[0] in HEAVY
                                                      or layer(target) in ("training", "export"))]
    assert not offenders, "; ".join(offenders)
    exporters = [f"{module} imports {target}" for module, found in GRAPH.items() if layer(module) == "runtime"
                 for target, _ in found if layer(target) == "export"]
    assert not exporters, "; ".join(exporters)


def test_training_never_imports_the_runtime():
    offenders = [f"{module} imports {target}" for module, found in GRAPH.items() if layer(module) == "training"
                 for target, _ in found if target.startswith("munit_rt") and layer(target) in ("runtime", "cli")
                 and target != "munit_rt"]
    assert not offenders, "; ".join(offenders)
    exporters = [f"{module} imports {target}" for module, found in GRAPH.items() if layer(module) == "training"
                 for target, _ in found if layer(target) == "export"]
    assert not exporters, "; ".join(exporters)


def test_shared_leaves_import_nothing_of_ours():
    for leaf in SHARED_LEAVES:
        ours = [target for target, _ in GRAPH[leaf] if target.startswith("munit_rt")]
        assert not ours, f"{leaf} imports {ours}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if state.get(target) is None and (cycle := walk(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (cycle := walk(node)):
            return cycle
    return None


def test_no_import_cycle_between_layers():
    edges: dict[str, set[str]] = {}
    for module, found in GRAPH.items():
        for target, _ in found:
            if target in MODULES and layer(target) != layer(module):
                edges.setdefault(layer(module), set()).add(layer(target))
    assert find_cycle(edges) is None, f"import cycle between layers: {find_cycle(edges)}"


@pytest.mark.parametrize("package", ["cli", "runtime", "training", "export"])
def test_no_import_cycle_inside_a_layer(package):
    edges = {module: {t for t, _ in found if t in MODULES and layer(t) == package and t != module}
             for module, found in GRAPH.items() if layer(module) == package}
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
