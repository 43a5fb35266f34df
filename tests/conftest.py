"""Shared pytest fixtures: the local fake analytics API (see docs/fake_api.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fake_api import DatasetConfig, FakeAPI, FakeAPIProcess, FaultConfig, start_fake_api

FakeHandle = FakeAPI | FakeAPIProcess

SMALL_DATASET = DatasetConfig()
"""The default dataset: ~220 records over the eight streams (seed 1)."""


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
