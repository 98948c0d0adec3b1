"""The engine's modules import only modules earlier in ``daemon.engine.ORDER``."""

from __future__ import annotations

import ast
from pathlib import Path

import daemon.engine as package


def test_no_module_imports_a_later_one() -> None:
    root = Path(package.__file__).parent
    modules = {p.stem for p in root.glob("*.py")} - {"__init__"}
    assert modules == set(package.ORDER)
    rank = {name: i for i, name in enumerate(package.ORDER)}
    for name in package.ORDER:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                imported = node.module.split(".")[0]
                assert rank[imported] < rank[name], f"{name} imports the later {imported}"
