"""Shared pytest fixtures: the local fake analytics API (see docs/fake_api.md); and which tests
`make test` (the fast loop) runs: see `CORE_E2E`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fake_api import DatasetConfig, FakeAPI, FakeAPIProcess, FaultConfig, start_fake_api

FakeHandle = FakeAPI | FakeAPIProcess

SMALL_DATASET = DatasetConfig()
"""The default dataset: ~220 records over the eight streams (seed 1)."""


CORE_E2E: dict[str, str] = {
    "tests/e2e/test_tap_e2e.py": "the tap as a process: full and incremental runs = ground truth",
    "tests/e2e/test_bridge_e2e.py::test_run_equals_dump_and_a_second_run_adds_nothing": (
        "dlt-bridge run into DuckDB = ground truth"
    ),
    "tests/e2e/test_bridge_e2e.py::test_as_a_singer_target_in_a_pipe": "tap | dlt-bridge load",
    "tests/e2e/test_native_parity.py::test_full_run_parity_and_dump": (
        "the native source = the bridge's tables = ground truth"
    ),
    "tests/e2e/test_readme_settings.py": "the README's generated tables are current",
    "tests/e2e/test_fake_api_process.py": "the fake API in its own process",
}
"""The end-to-end tests `make test` runs, besides tests/unit and tests/conformance (a module, or
one test with all its parameters). Every other test under tests/e2e and tests/reliability is
marked `slow` and left to `make test-all`: Meltano, Dagster, PostgreSQL, kills, injected faults,
bad input, every command-line path. Keep `make test` under 5 minutes on 2 cores."""

_LEFT_TO_TEST_ALL = ("tests/e2e/", "tests/reliability/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` every end-to-end and reliability test not in `CORE_E2E`; fail when an entry
    of `CORE_E2E` names a test that is gone from a collected module."""
    found: set[str] = set()
    modules: set[str] = set()
    for item in items:
        module = item.nodeid.split("::")[0]
        if not module.startswith(_LEFT_TO_TEST_ALL):
            continue
        modules.add(module)
        entry = next((e for e in CORE_E2E if _names(e, item.nodeid)), None)
        if entry is None:
            item.add_marker(pytest.mark.slow)
        else:
            found.add(entry)
    stale = [e for e in CORE_E2E if e.split("::")[0] in modules and e not in found]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py CORE_E2E names tests that are gone: {stale}")


def _names(entry: str, nodeid: str) -> bool:
    """Whether `entry` (a module or a test) is `nodeid` or contains it."""
    return nodeid == entry or nodeid.startswith((entry + "::", entry + "["))


def tap_config_for(api: FakeHandle, **extra: Any) -> dict[str, Any]:
    """A tap config dict for a running fake: ``{"api_key": token, "base_url": url, **extra}``."""
    return {"api_key": api.token, "base_url": api.url, **extra}


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    """The fake API with the small default dataset, in a thread of the test process.

    Function-scoped: each test gets fresh data, no faults and zeroed stats (starting one costs
    a few milliseconds).
    """
    with FakeAPI(SMALL_DATASET) as api:
        api.reset_stats()
        yield api


@pytest.fixture
def fake_tap_config(fake_api: FakeAPI) -> dict[str, Any]:
    """Tap config pointing at the ``fake_api`` fixture."""
    return tap_config_for(fake_api)


@pytest.fixture
def fake_api_factory() -> Iterator[Callable[..., FakeHandle]]:
    """Start fakes with custom settings; all are closed at the end of the test.

    ``factory(dataset=DatasetConfig(...), faults=FaultConfig(...), latency_ms=0,
    token="test-token", in_process=True)``; ``in_process=False`` runs it in its own process.
    """
    started: list[FakeHandle] = []

    def factory(
        dataset: DatasetConfig | None = None,
        *,
        faults: FaultConfig | None = None,
        in_process: bool = True,
        **kwargs: Any,
    ) -> FakeHandle:
        api = start_fake_api(dataset, in_process=in_process, faults=faults, **kwargs)
        started.append(api)
        return api

    yield factory
    for api in reversed(started):
        api.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session (tests/postgres.py).

    Started on first use, stopped and removed at the end. Missing server binaries fail the test
    (`make postgres` installs them) unless ANALYTICS_SKIP_POSTGRES=1, which skips it.
    Use `postgres.create_database()` for a database of the test's own and `postgres.dsn(db)`.
    """
    from tests.postgres import PostgresUnavailable, skip_requested, start_cluster

    if skip_requested():
        pytest.skip("ANALYTICS_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def untrusted_tls_server() -> Iterator[Any]:
    """An HTTPS server on 127.0.0.1 whose certificate fails every client's verification
    (`tests.tls_server.UntrustedTLSServer`: `.url`, `.connections`)."""
    from tests.tls_server import UntrustedTLSServer

    with UntrustedTLSServer() as server:
        yield server
