"""The shape STYLE.md asks of the library: functions of at most 60 lines, files under ~600 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raftkit"
SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_stay_under_60_lines_and_files_under_600(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600, (
        f"{path.name} has {len(text.splitlines())} lines: split it"
    )
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, f"functions over 60 lines in {path.name}: {long}"
