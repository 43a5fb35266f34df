"""Unit-test options: snapshots are only rewritten when asked for."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite tests/unit/snapshots/ from the current code (also: UPDATE_SNAPSHOTS=1)",
    )


@pytest.fixture
def update_snapshots(request: pytest.FixtureRequest) -> bool:
    """True when asked to rewrite snapshots (`--update-snapshots` or UPDATE_SNAPSHOTS=1)."""
    option = bool(request.config.getoption("--update-snapshots", default=False))
    return option or os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0")
