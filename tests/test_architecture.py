"""The package layout shows the pipeline (docs/architecture.md): the import graph of nas_llv has
no circle, and no module of one floor imports a module of a later floor. Every import counts,
the ones inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nas_llv"

# floor of each top-level part of nas_llv; a module may import its own floor and those below.
# derive, retrain, evaluation and inference stand beside search, not above it: they build on space
# and read export's files.
FLOORS = {
    "ground": 0,  # config, registry, runs, job, optim, data, losses, metrics, ...
    "space": 1,
    "search": 2,
    "export": 2,
    "derive": 3, "retrain": 3, "evaluation": 3,  # beside each other, above export
    "inference": 3,  # engines: a model file (export) run on images, for enhance and eval
    "report": 3,  # reads finished runs' files, as derive does: a page of them (nas-llv report)
    "pipeline": 4,  # the steps as functions, and sweeps of them: what the command line and a notebook call
    "commands": 5, "cli": 5, "__main__": 5,
}
BESIDE = {("search", "export"), ("export", "search"),  # never import each other
          *((step, "search") for step in ("derive", "retrain", "evaluation", "inference", "report")),
          *(("search", step) for step in ("derive", "retrain", "evaluation", "inference", "report"))}


GROUND_PACKAGES = {"data", "losses", "metrics"}  # packages of the ground floor


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nas_llv"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nas_llv"))
    return found


def _graph() -> nx.DiGraph:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _imports(path):
            if target in modules and target != name and not name.startswith(target + "."):
                g.add_edge(name, target)  # a package's own __init__ is not an import of its parent
    return g


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else "ground"


def test_the_import_graph_has_no_circle():
    g = _graph()
    # a package importing its own submodules (``__init__`` re-exports) is not a circle
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import circles: {cycles[:3]}"


def test_no_module_imports_a_later_step():
    wrong = []
    for a, b in _graph().edges:
        pa, pb = _part(a), _part(b)
        if FLOORS[pb] > FLOORS[pa] or (pa, pb) in BESIDE:
            wrong.append(f"{a} ({pa}) imports {b} ({pb})")
    assert not wrong, "\n".join(wrong)


def test_search_extensions_stand_below_the_loop():
    """``search/extensions/`` (docs/extensions.md) is reached by the search loop through its package
    alone, and no extension imports the loop or a strategy: they see the search through ``Search``."""
    g = _graph()
    ext = "nas_llv.search.extensions"
    wrong = [f"{a} imports {b}" for a, b in g.edges
             if (a == "nas_llv.search.loop" and b.startswith(ext + ".") and b != f"{ext}.base")
             or (a.startswith(ext) and (b == "nas_llv.search.loop" or b.startswith("nas_llv.search.strateg")))]
    assert ext in set(g.successors("nas_llv.search.loop")) and not wrong, "\n".join(wrong)


def test_every_package_has_a_floor():
    """A new package of nas_llv is given its floor here (and in docs/architecture.md); otherwise it
    would count as ground floor and might import any step unseen."""
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages - GROUND_PACKAGES - set(FLOORS) == set()


@pytest.mark.parametrize("step", ["space", "search", "export", "inference", "derive", "retrain", "evaluation", "report",
                                  "pipeline"])
def test_each_step_is_a_package(step):
    assert (PACKAGE / step / "__init__.py").is_file()


def test_only_the_command_line_parses_arguments():
    """argparse belongs to cli.py and commands/: every other module takes typed arguments."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        name = _module(path)
        if _part(name) in ("cli", "commands", "__main__"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            if "argparse" in names:
                wrong.append(name)
    assert not wrong, f"imports argparse outside the command line: {sorted(set(wrong))}"
