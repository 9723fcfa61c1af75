"""The package's shape: no import cycles, a light `import instantrestore.faces`, short files."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "instantrestore"
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (type-only, never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    skipped.add(id(sub))
    return skipped


def import_graph() -> dict[str, set[str]]:
    """module -> package modules it imports at run time (module level or inside functions)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        type_only = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from pkg import submodule` depends on the submodule (and pkg's __init__ only
                # for names defined there)
                subs = [f"{mod}.{alias.name}" for alias in node.names if f"{mod}.{alias.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [mod, *subs]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                # a module's own ancestors' __init__ run before it anyway: not an edge
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def tangled_groups(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (strongly connected, more than one module)."""
    reach = {node: set() for node in graph}
    for node in graph:
        todo = list(graph[node])
        while todo:
            nxt = todo.pop()
            if nxt not in reach[node]:
                reach[node].add(nxt)
                todo.extend(graph[nxt])
    groups = {frozenset({n} | {m for m in reach[n] if n in reach[m]}) for n in graph if n in reach[n]}
    return sorted(sorted(g) for g in groups)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"{' -> '.join(cycle)}; all tangled groups: {tangled_groups(graph)}"


@pytest.mark.parametrize("module", ["instantrestore.faces", "instantrestore.data.degradations",
                                    "instantrestore.utils.images"])
def test_light_modules_do_not_load_diffusers(module: str) -> None:
    code = f"import sys, {module}; bad = [m for m in ('diffusers', 'peft') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_names_stay_importable() -> None:
    import instantrestore

    for name in ("InstantRestore", "GeneratorOutput", "ReferenceCache", "ModelConfig", "backbone_config",
                 "FaceRestorer"):
        assert getattr(instantrestore, name).__name__ == name
    with pytest.raises(AttributeError):
        instantrestore.no_such_name  # noqa: B018


def test_no_source_file_is_too_long() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split by concern (over {MAX_LINES} lines): {long}"


# lower layers never import upper ones (what docs/architecture.md draws)
FORBIDDEN = {
    "faces": ("generator", "pipeline", "train", "losses", "bench", "cli", "ui"),
    "utils": ("generator", "pipeline", "faces", "data", "train", "losses", "bench", "cli", "ui"),
    "data": ("generator", "pipeline", "train", "losses", "bench", "cli", "ui"),
    "generator": ("pipeline", "data", "losses", "train", "bench", "cli", "ui"),
    "pipeline": ("train", "losses", "bench", "cli", "ui"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    graph = import_graph()
    bad = sorted(f"{src} -> {dst}" for src, dsts in graph.items() if src.startswith(f"instantrestore.{layer}.")
                 or src == f"instantrestore.{layer}"
                 for dst in dsts if any(dst.startswith(f"instantrestore.{up}") for up in FORBIDDEN[layer]))
    assert not bad, bad
