"""The code's layout as documented: runtime packages never import the tools, every module
says its job, and the README's module table lists every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = sorted(p for pkg in ("indexer", "service") for p in (ROOT / pkg).glob("*.py") if p.name != "__init__.py")
TOOLS = sorted(p for pkg in ("eval", "bench") for p in (ROOT / pkg).glob("*.py") if p.name != "__init__.py")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_modules_never_import_evaluation_or_benchmarks(path):
    tools = {n for n in imported_modules(path) if n.split(".")[0] in ("eval", "bench", "benchlib")}
    assert not tools, f"{path.relative_to(ROOT)} imports {sorted(tools)}"


@pytest.mark.parametrize("path", RUNTIME + TOOLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_docstring_naming_its_job(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 5, f"{path.relative_to(ROOT)} has no docstring saying its job"


def test_readme_module_table_lists_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| module | job |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`((?:indexer|service|eval|bench)/[\w/]+\.py)`", table))
    expected = {str(p.relative_to(ROOT)) for p in RUNTIME + TOOLS}
    assert expected - listed == set(), f"missing from the README's module table: {sorted(expected - listed)}"
    assert listed - expected == set(), f"listed but absent: {sorted(listed - expected)}"
