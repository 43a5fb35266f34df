"""`analytics_api`'s package names its exports three times (the lazy map, the imports for type
checkers, `__all__`); they must agree, and importing the package must import none of them."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys

import analytics_api


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(analytics_api))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module is not None
                for alias in stmt.names:
                    found[alias.name] = stmt.module.removeprefix("analytics_api.")
    return found


def test_the_three_lists_of_exports_agree() -> None:
    exports = analytics_api._EXPORTS
    assert sorted(analytics_api.__all__) == sorted(exports)
    assert _type_checking_imports() == exports
    for name, module in exports.items():
        defined = getattr(importlib.import_module(f"analytics_api.{module}"), name)
        assert getattr(analytics_api, name) is defined, name


def test_importing_the_package_imports_no_module_of_it() -> None:
    code = (
        "import sys, analytics_api.errors; "
        "print(sorted(m for m in sys.modules if m.startswith('analytics_api.') "
        "or m == 'requests'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "['analytics_api.errors']"
