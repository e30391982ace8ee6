"""The package's shape: modules import only from their own or an earlier step of the pipeline
(retrieval -> raft -> train -> compare, with the shared top-level modules first), and no module
imports, at import time, one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parents[1] / "raftkit"
ORDER = ("", "retrieval", "raft", "train", "compare")  # "": raftkit/*.py, shared by every step
FRONT = {"raftkit.cli", "raftkit.settings"}  # the command line: every step's front door


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """raftkit modules `path` imports; with `top_level_only`, those run at import time (not
    inside functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        found = [node]
        if top_level_only and isinstance(node, (ast.If, ast.Try)):
            found = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for n in found:
            if isinstance(n, ast.Import):
                out |= {a.name for a in n.names if a.name.startswith("raftkit")}
            elif isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("raftkit"):
                # `from pkg import mod` imports the module; any other name, the package itself
                subs = {f"{n.module}.{a.name}" for a in n.names}
                out |= (subs & MODULES) | ({n.module} if subs - MODULES else set())
    return out & MODULES


def _step(module: str) -> int:
    if module in FRONT:
        return len(ORDER)
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in ORDER else 0


FILES = sorted(PKG.rglob("*.py"))
MODULES = {_module(p) for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_import_from_a_later_step(path):
    mine = _step(_module(path))
    later = sorted(m for m in _imports(path, top_level_only=False) if _step(m) > mine)
    assert later == [], f"{_module(path)} imports from a later pipeline step: {later}"


def test_no_import_cycle():
    graph = {_module(p): _imports(p, top_level_only=True) for p in FILES}
    cycles, done = [], set()

    def visit(node, trail):
        if node in trail:
            cycles.append(trail[trail.index(node) :] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, trail + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert cycles == []
