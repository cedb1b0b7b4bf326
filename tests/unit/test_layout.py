"""The house's plan, read from the code's own imports: no import circle (a package's private
modules never import its public face back), no package imports one above it, and another
package's modules are reached through its face (its __init__, whose _EXPORTS say which
module holds each name: a name imported from a face counts as an import of that module).
Imports made for type checking alone do not count; imports inside functions do."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "runner"
# Bottom first: a module may import its own package and the ones before it, never after.
LAYERS = ["text", "units", "errors", "faces", "host", "records", "gateway", "sandbox", "agents", "phase",
          "worker", "isolation", "run", "views", "cli"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def faces() -> dict[str, dict[str, str]]:
    """Each package's face: name -> the module that holds it (its __init__'s _EXPORTS)."""
    found = {}
    for module, path in _modules().items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_EXPORTS":
                exports = ast.literal_eval(node.value)
                found[module] = {name: holder for holder, names in exports.items()
                                 for name in names}
    return found


def _imported(path: Path, module: str,
              shown: dict[str, dict[str, str]] | None = None) -> Iterator[str]:
    """What ``module`` imports of runner, by name (a name may be an attribute of one; a name
    a face shows, the module that holds it)."""
    shown = faces() if shown is None else shown
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            yield base
            face = shown.get(base, {})
            yield from (face.get(alias.name, f"{base}.{alias.name}") for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    shown = faces()
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        for name in _imported(path, module, shown):
            target = owner(name) if name.startswith("runner") else None
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def layer(module: str) -> int | None:
    """Where a module's package stands (None: runner's own face and entry point)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_layers_name_every_package_of_runner() -> None:
    tops = {module.split(".")[1] for module in _modules() if "." in module}
    assert tops - {"__main__"} == set(LAYERS)


def test_no_module_imports_itself_back_through_others() -> None:
    assert circles(import_graph()) == []


def test_no_package_imports_one_above_it() -> None:
    upward = sorted(f"{module} -> {target}"
                    for module, targets in import_graph().items() for target in targets
                    if layer(module) is not None and layer(target) is not None
                    and layer(target) > layer(module))
    assert upward == []


def test_other_packages_are_reached_through_their_faces() -> None:
    """Outside a package, nothing imports one of its modules by name: only its face."""
    around = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runner."):
                target = node.module or ""
                package = ".".join(target.split(".")[:2])
                if layer(target) is not None and target != package \
                        and not module.startswith(package + ".") and module != package:
                    around.append(f"{module} -> {target}")
    assert sorted(around) == []


def test_each_face_shows_names_its_modules_hold() -> None:
    """...and no name is also one of the package's modules (importing that module would put
    the module where the name was)."""
    import importlib
    import pkgutil

    for face, names in faces().items():
        modules = {found.name for found in pkgutil.iter_modules(importlib.import_module(
            face).__path__)}
        assert not set(names) & modules, face
        for name, holder in names.items():
            assert hasattr(importlib.import_module(holder), name), f"{face}: {name}"
            assert getattr(importlib.import_module(face), name) is getattr(
                importlib.import_module(holder), name)


def test_a_circle_and_an_upward_import_are_seen() -> None:
    """The checks can fail: a made-up graph with both."""
    graph = {"runner.host.a": {"runner.views.b"}, "runner.views.b": {"runner.host.a"}}
    assert circles(graph) == [["runner.host.a", "runner.views.b"]]
    assert layer("runner.host.a") < layer("runner.views.b")
