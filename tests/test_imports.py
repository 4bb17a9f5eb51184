"""The house's doors open one way: no import cycle between winnow's modules, and the rooms keep their layering.

Every `import` in a module counts, at the top or inside a function: a function-level import hides a cycle
from Python at load time, not from this test.
"""

import ast
import importlib
import pkgutil
from pathlib import Path

import winnow

SRC = Path(winnow.__file__).parent


def project_modules() -> dict[str, Path]:
    found = {"winnow": SRC / "__init__.py"}
    for info in pkgutil.walk_packages([str(SRC)], "winnow."):
        spec = importlib.util.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from package import submodule` counts as the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        edges.update(t for t in targets if t in modules and t != name)
    return edges


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_imports():
    for name in project_modules():
        importlib.import_module(name)


def test_no_import_cycle_between_project_modules():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    # the check above must be able to fail: a planted two-module and a three-module circle are found
    planted = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert cycles(planted) == [["a", "b"], ["c", "d", "e"]]


def test_rooms_import_one_way():
    # blocks/ are usable in anyone's datatrove pipeline: they import nothing of ours outside blocks/;
    # classifiers/ and proxy/ never reach up into pipelines/ (the only room that knows stages and paths)
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("winnow.blocks"):
            assert all(t.startswith("winnow.blocks") for t in targets), (name, targets)
        if name.startswith(("winnow.classifiers", "winnow.proxy")):
            assert not any(t.startswith("winnow.pipelines") for t in targets), (name, targets)


def test_every_name_winnow_blocks_exports_resolves():
    import winnow.blocks

    for name in winnow.blocks.__all__:
        assert getattr(winnow.blocks, name) is not None, name
