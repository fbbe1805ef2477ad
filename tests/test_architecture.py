"""The shape of the code: no import circles, modules a reader can hold, task branches only
in the task modules (docs/architecture.md says why)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "cvpipe"
MAX_LINES = 550  # "about 500": a module over this is split along a seam
TASK_NAMES = {"classify", "count", "detect"}


def _import_graph_module():
    spec = importlib.util.spec_from_file_location(
        "import_graph", ROOT / "scripts" / "import_graph.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_no_import_circle() -> None:
    ig = _import_graph_module()
    assert ig.circles(ig.import_graph(SRC)) == []


def test_the_checker_finds_a_circle(tmp_path: Path) -> None:
    ig = _import_graph_module()
    pkg = tmp_path / "cvpipe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cvpipe import b\n")
    (pkg / "b.py").write_text("from cvpipe.a import f\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cvpipe import a\n"
    )
    (pkg / "d.py").write_text("from cvpipe import c\n")
    assert ig.circles(ig.import_graph(pkg)) == [["cvpipe.a", "cvpipe.b"]]


def test_modules_stay_readable() -> None:
    long = {
        str(f.relative_to(SRC)): n
        for f in SRC.rglob("*.py")
        if (n := len(f.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def _task_branches(tree: ast.AST) -> list[int]:
    """Lines comparing something task-like with a task's name (``ds.task == "detect"``,
    ``task in ("classify", "count")``)."""
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names: set[str] = set()
        for side in sides:
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                names.add(side.value)
            elif isinstance(side, (ast.Tuple, ast.List, ast.Set)):
                names |= {
                    e.value
                    for e in side.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
        taskish = any("task" in ast.unparse(s).lower() for s in sides)
        if taskish and names & TASK_NAMES:
            hits.append(node.lineno)
    return hits


def test_task_branches_live_in_the_task_modules() -> None:
    found = {
        f"{f.relative_to(SRC)}:{line}"
        for f in SRC.rglob("*.py")
        if "tasks" not in f.relative_to(SRC).parts
        for line in _task_branches(ast.parse(f.read_text()))
    }
    assert found == set()


def test_the_branch_finder_finds_branches() -> None:
    code = 'if ds.task == "detect": pass\nif task in ("classify", "count"): pass\nif x == "detect": pass\n'
    assert _task_branches(ast.parse(code)) == [1, 2]
