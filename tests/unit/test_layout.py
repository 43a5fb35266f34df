"""Import arrows point one way: the contract imports no framework and no engine; nothing but the
tap imports the tap; the shared dlt layer imports no engine; no runtime package imports the
checkout's fake API, tests or benchmarks.

    analytics_api  <-  tap_analytics
    analytics_api  <-  analytics_dlt  <-  analytics_source  <-  dlt_bridge
                                      <-  analytics_dagster   (nothing imports it)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_ENGINES = ("tap_analytics", "analytics_source", "dlt_bridge", "analytics_dagster")
_CHECKOUT_ONLY = ("fake_api", "tests", "benchmarks", "scripts")
FORBIDDEN = {
    "analytics_api": ("singer_sdk", "dlt", "dagster", "analytics_dlt", *_ENGINES),
    "analytics_dlt": ("singer_sdk", "dagster", *_ENGINES),
    "analytics_source": (
        "singer_sdk",
        "dagster",
        "tap_analytics",
        "dlt_bridge",
        "analytics_dagster",
    ),
    "dlt_bridge": ("singer_sdk", "dagster", "tap_analytics", "analytics_dagster"),
    "tap_analytics": (
        "dlt",
        "dagster",
        "analytics_dlt",
        "analytics_source",
        "dlt_bridge",
        "analytics_dagster",
    ),
    "analytics_dagster": ("singer_sdk", "tap_analytics", "dlt_bridge"),
}
FORBIDDEN = {package: (*names, *_CHECKOUT_ONLY) for package, names in FORBIDDEN.items()}
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
