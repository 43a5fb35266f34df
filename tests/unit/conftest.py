"""Unit-test options: snapshots are only rewritten when asked for."""

from __future__ import annotations

import os
import subprocess

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


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests start no process: a test that tries fails at once (it belongs in tests/e2e).

    Every way the standard library starts one goes through `subprocess.Popen` or `os.fork`/
    `os.posix_spawn`, so refusing those catches `subprocess.run`, `multiprocessing` and
    `FakeAPIProcess` alike. In-process servers (threads) are allowed.
    """

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests/unit starts no process: move this test to tests/e2e")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)
