"""Import arrows point one way: the contract imports no framework and no engine; nothing but the
tap imports the tap; the native source does not import the bridge (the bridge may import it).

    analytics_api  <-  tap_analytics
    analytics_api  <-  analytics_source  <-  dlt_bridge
    analytics_api  <-  analytics_source  <-  analytics_dagster   (nothing imports it)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_ENGINES = ("tap_analytics", "analytics_source", "dlt_bridge", "analytics_dagster")
FORBIDDEN = {
    "analytics_api": ("singer_sdk", "dlt", "dagster", *_ENGINES),
    "analytics_source": (
        "singer_sdk",
        "dagster",
        "tap_analytics",
        "dlt_bridge",
        "analytics_dagster",
    ),
    "dlt_bridge": ("singer_sdk", "dagster", "tap_analytics", "analytics_dagster"),
    "tap_analytics": ("dlt", "dagster", "analytics_source", "dlt_bridge", "analytics_dagster"),
    "analytics_dagster": ("singer_sdk", "tap_analytics", "dlt_bridge"),
}
MAX_RUNTIME_MODULE_LINES = 400


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_arrows_point_one_way(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & set(FORBIDDEN[package])
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_runtime_module_is_too_long(package: str) -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_RUNTIME_MODULE_LINES
    ]
    assert not long, long
