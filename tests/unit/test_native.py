"""What only the native dlt source has: its resource wiring (the parent id's bridge column
name), its parallel child fetches within `max_concurrency`, one client per run, and dlt
incremental's `latest_timestamp`.

How it meets the API (paging, retries, statuses, bodies, records, redirects, the key) is asserted
for both engines by one table in tests/conformance; there are no native-only copies here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock

import dlt_bridge  # noqa: F401  (telemetry off by default)
from analytics_api.timestamps import latest_timestamp
from analytics_source import analytics_source
from tests.servers import Reply, Request, ScriptedServer, error, page
from tests.unit.mockapi import BASE_URL, queries, rec, serve_apps_with_children

API_KEY = "sk_native_SECRET_91c0"


@pytest.fixture
def mocker() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        yield m


def extract(stream: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Rows of one stream, without a pipeline (dlt keeps incremental state in memory)."""
    source = analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(stream)
    return list(source)


# -- resource wiring ----------------------------------------------------------------------------


def test_children_get_the_parent_id_under_the_bridge_column_name(
    mocker: requests_mock.Mocker,
) -> None:
    apps = [rec(f"app_{i}") for i in range(5)]
    children = serve_apps_with_children(mocker, apps, per_app=3)
    rows = extract("endpoints", page_size=2)
    expected = [(c["id"], app) for app, cs in children.items() for c in cs]
    assert sorted((r["id"], r["app_id"]) for r in rows) == sorted(expected)
    assert not any(k.startswith("_applications") for r in rows for k in r)
    # each app's child list walked once (3 records: two pages of 2), the parent list once (3 pages)
    for app in apps:
        assert len(queries(mocker, f"/v1/app/{app['id']}/endpoint")) == 2
    assert len(queries(mocker, "/v1/app")) == 3


# -- incremental ------------------------------------------------------------------------------


def test_latest_timestamp_compares_by_time_across_precisions() -> None:
    assert latest_timestamp(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z"]) == (
        "2024-01-01T00:00:00.500000000Z"
    )
    assert latest_timestamp(["2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00.123Z"]) == (
        "2024-01-01T00:00:00.123456789Z"
    )
    assert latest_timestamp(["2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00.000001Z"]) == (
        "2024-01-01T00:00:00.000001000Z"
    )
    # canonical values (the stored state) pass through unchanged
    assert latest_timestamp(["2024-01-01T00:00:00.100000000Z"]) == "2024-01-01T00:00:00.100000000Z"


# -- concurrency --------------------------------------------------------------------------------


class ChildServer:
    """A real local server (requests-mock serialises requests; tests/servers.py): `apps`
    applications with two endpoints each; counts child requests in flight, and with `parties`
    holds each child request until that many are in flight together (a barrier: no timing)."""

    def __init__(self, apps: int, parties: int = 0) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.barrier = threading.Barrier(parties, timeout=10) if parties else None
        self.server = ScriptedServer().start()
        self.url = self.server.url
        self.server.script("/v1/app", page([rec(f"app_{i}") for i in range(apps)], None, done=True))
        for i in range(apps):
            self.server.route(f"/v1/app/app_{i}/endpoint", self._children)

    @property
    def paths(self) -> list[str]:
        return self.server.paths()

    def close(self) -> None:
        self.server.close()

    def _children(self, request: Request) -> Reply:
        app = request.path.split("/")[3]
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            return page([rec(f"ep_{app[4:]}_{j}") for j in range(2)], None, done=True)
        except threading.BrokenBarrierError:
            return error(400, "barrier")
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def child_server(request: pytest.FixtureRequest) -> Iterator[ChildServer]:
    server = ChildServer(*request.param)
    yield server
    server.close()


@pytest.mark.parametrize("child_server", [(9, 3)], indirect=True)
def test_children_are_fetched_concurrently_within_max_concurrency(
    child_server: ChildServer,
) -> None:
    source = analytics_source(child_server.url, API_KEY, max_concurrency=3)
    rows = list(source.with_resources("endpoints"))
    assert [r["id"] for r in rows] == [f"ep_{i}_{j}" for i in range(9) for j in range(2)]
    assert child_server.most == 3  # the barrier needs 3 at once; the client allows no more


@pytest.mark.parametrize("child_server", [(9, 0)], indirect=True)
def test_not_parallelized_means_one_request_at_a_time(child_server: ChildServer) -> None:
    source = analytics_source(child_server.url, API_KEY, parallelized=False)
    rows = list(source.with_resources("endpoints"))
    assert len(rows) == 18
    assert child_server.most == 1
    # the parent list first, then each parent's children in parent order
    assert child_server.paths == ["/v1/app"] + [f"/v1/app/app_{i}/endpoint" for i in range(9)]


def test_one_client_for_the_whole_run(mocker: requests_mock.Mocker) -> None:
    """Every resource shares one `ApiClient` (one retry pause, one concurrency limit)."""
    from analytics_api.client import ApiClient

    made: list[ApiClient] = []
    original = ApiClient.__init__

    def counting(self: ApiClient, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ApiClient, "__init__", counting)
        source = analytics_source(BASE_URL, API_KEY)
    assert len(source.resources) == 8
    assert len(made) == 1
