"""The package's shape: arrows run one way (text -> tokens -> ids -> layers -> models -> data /
training / tasks / export -> commands).

  * no module imports kbert.commands except kbert/cli.py and kbert/commands/*;
  * the kbert modules' import graph (every `import` / `from ... import`, function-local ones
    included) has no cycle. The string tables that import on demand (`kbert/_lazy.py` exports,
    `_SERIALIZABLE_MODULES` in kbert/loading.py) are registries, not imports, and do not count;
  * no private name (`_x`) of a kbert module is imported by another package.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "kbert"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported kbert module, names taken from it) for every import statement of `module`."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "kbert"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "kbert":
                found.append((base, [a.name for a in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    """module -> the kbert modules it imports (a name that is a submodule counts as that)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, names in _imports(module):
            submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
            if target in MODULES and (not names or len(submodules) < len(names)):
                graph[module].add(target)
            graph[module] |= submodules
        graph[module].discard(module)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (its modules in order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_function_local_imports():
    graph = _graph()
    assert "kbert.fill_mask" in graph["kbert.training.pretrain"]  # imported inside a function
    assert "kbert.tokenization.tokenizer" in graph["kbert.tokenization.vocab_training"]


def test_only_the_command_line_imports_commands():
    offenders = sorted(
        f"{module} imports {target}" for module, targets in _graph().items()
        for target in targets
        if target.startswith("kbert.commands") and module != "kbert.cli"
        and not module.startswith("kbert.commands"))
    assert offenders == []


def test_no_import_cycle_among_kbert_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _package(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def test_no_private_name_imported_across_packages():
    offenders = []
    for module in MODULES:
        for target, names in _imports(module):
            if target not in MODULES or _package(target) == _package(module):
                continue
            offenders += [f"{module} imports {target}.{n}" for n in names
                          if n.startswith("_") and not n.startswith("__")]
    assert offenders == []
