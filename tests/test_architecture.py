"""The import directions of docs/architecture.md, checked on the source (every import, also inside functions).

A module may import its own layer and the layers below it, never one above: so the leaves stay usable alone
(a notebook can score predictions or read a card without Ray), nothing reaches back into the command line, and
rendering a leaderboard never starts Ray.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Lowest first; a module is placed by its first two name parts (harness.features.runner -> harness.features).
LAYERS: dict[str, int] = {
    # 0: leaves (and methods/, which knows nothing of the harness)
    "harness": 0, "harness.hashing": 0, "harness.atomic": 0, "harness.media": 0, "harness.metrics": 0,
    "harness.config": 0, "harness.registry": 0, "harness.results": 0, "harness.stats": 0, "harness.normalize": 0,
    "harness.runtime": 0, "harness.claims": 0, "harness.perfold": 0, "methods": 0,
    "harness.paper_inputs": 0, "harness.names": 0, "harness.interrupt": 0,
    # 1: corpora as data
    "harness.manifest": 1, "harness.protocols": 1, "harness.datasets": 1, "harness.corpus": 1,
    "harness.ratings": 1, "harness.sota": 0, "harness.datachecks": 1,
    # 2: features, and what the data commands do
    "harness.features": 2, "harness.data_commands": 2,
    # 3: the search, MLflow tracking, the report, dataset preparation
    "harness.prepare": 3,
    "harness.search": 3, "harness.track": 3, "harness.plots": 3,
    # 4: the stages of a run and the evaluations built on finished results
    "harness.pipeline": 4, "harness.robustness": 4, "harness.e2e": 4, "harness.report": 4,
    "harness.finetune": 4,
    # 5: the command line
    "harness.cli": 5,
}
NO_RAY = ("harness.metrics", "harness.stats", "harness.results", "harness.report", "harness.plots", "harness.track",
          "methods")


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "methods" or len(parts) == 1 else ".".join(parts[:2])


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted([*(REPO / "harness").rglob("*.py"), *(REPO / "methods").rglob("*.py")]):
        parts = path.relative_to(REPO).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, node.lineno))
    return out


def test_every_module_has_a_layer():
    unplaced = sorted({_unit(m) for m, _ in _modules()} - set(LAYERS))
    assert unplaced == [], f"place these in docs/architecture.md and LAYERS: {unplaced}"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(module, path):
    layer = LAYERS.get(_unit(module))
    upward = [f"{path.relative_to(REPO)}:{line} imports {name} (layer {LAYERS[_unit(name)]} > {layer})"
              for name, line in _imports(path)
              if name.split(".")[0] in ("harness", "methods") and _unit(name) in LAYERS and layer is not None
              and LAYERS[_unit(name)] > layer]
    assert upward == []
    if _unit(module) == "methods":
        assert [n for n, _ in _imports(path) if n.split(".")[0] == "harness"] == []
    if _unit(module) in NO_RAY:
        assert [n for n, _ in _imports(path) if n.split(".")[0] == "ray"] == [], f"{module} must not need Ray"


def _import_graph() -> dict[str, set[str]]:
    """Module -> the harness/methods modules it imports (`from harness import track` counts as harness.track)."""
    modules = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:  # `from a.b import func` is an edge to a.b
                    name = name.rpartition(".")[0]
                if name and name != module:
                    edges.add(name)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the modules along it, or [] when the graph has none (depth-first, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = 2
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


def test_the_import_graph_has_no_cycle():
    """Also inside one layer (a cycle between two report modules is as hard to read as one across layers), and
    also through imports inside functions: each module must be understandable from the ones below it."""
    assert _cycle(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_feature_engine_imports_no_extractor():
    """Inside `harness.features` (one layer), the engine and the weight helpers sit below the extractors: they reach
    an extractor only through the registry (by name), so a new extractor is a file in `harness/features/extractors/`
    and nothing else changes."""
    below = [m for m, _ in _modules() if m.startswith("harness.features")
             and not m.startswith("harness.features.extractors")]
    assert "harness.features.base" in below and "harness.features.weights.hf" in below
    graph = _import_graph()
    upward = sorted(f"{m} imports {t}" for m in below for t in graph[m] if t.startswith("harness.features.extractors"))
    assert upward == []


def test_only_track_reads_or_writes_mlflow():
    """Every MLflow read and write is in `harness/track.py` (the results contract both ways): no other module of
    the harness or of methods/ imports MLflow, even inside a function."""
    outside = [f"{path.relative_to(REPO)}:{line} imports {name}" for module, path in _modules()
               if module != "harness.track" for name, line in _imports(path) if name.split(".")[0] == "mlflow"]
    assert outside == []
