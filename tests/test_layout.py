"""The layout by pipeline stage holds: imports run one way, from the edges down to the records, with no cycle;
neither store imports the other; no module imports another's private names (docs/architecture.md#code-layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "assistant"
# The stages, lowest first: a module imports only modules of its own stage or of a lower one.
STAGES = [
    ["config", "errors", "documents", "lru", "threads"],
    [
        "structure",
        "ocr",
        "formats",
        "places",
        "onnx_model",
        "embedding",
        "chunking",
        "question",
        "parses",
        "entities",
        "ingest",
    ],
    ["index.manifest", "index.store", "index.lexical"],
    ["index.faiss", "index.milvus"],
    ["index", "access"],
    ["search", "confidence", "answers"],
    ["service", "builds", "watch"],
    ["serve", "cli_accounts", "cli_remote", "cli", "__main__"],
]
STORES = ("index.faiss", "index.milvus")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of the package's own modules, lazy ones included."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            base = base.strip(".")
            for alias in node.names:  # `from . import threads` imports a module; `from .x import y` a name
                child = f"{base}.{alias.name}".strip(".")
                found.append((child, []) if child in MODULES else (base, [alias.name]))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else [a.name for a in node.names]
            found += [
                (n.removeprefix("assistant.").removeprefix("assistant"), [])
                for n in names
                if n and n.split(".")[0] == "assistant"
            ]
    return found


def _stage(module: str) -> int:
    ranked = [
        (len(prefix), rank)
        for rank, stage in enumerate(STAGES)
        for prefix in stage
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert ranked or module == "", f"{module} is in no stage: add it to STAGES"
    return max(ranked)[1] if ranked else len(STAGES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_imports_run_from_the_edges_down(module: str) -> None:
    upward = [target for target, _ in _imports(module) if target and _stage(target) > _stage(module)]
    assert not upward, f"{module} (stage {_stage(module)}) imports a later stage: {upward}"


def test_neither_store_imports_the_other() -> None:
    for module in MODULES:
        for mine, other in (STORES, STORES[::-1]):
            if module.startswith(mine):
                assert not [t for t, _ in _imports(module) if t.startswith(other)], module


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        (module, target, name)
        for module in MODULES
        for target, names in _imports(module)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not private


def test_there_is_no_import_cycle() -> None:
    graph = {m: {t for t, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path[path.index(module) :], module])
        if module not in done:
            for target in graph[module]:
                visit(target, [*path, module])
            done.add(module)

    for module in graph:
        visit(module, [])
