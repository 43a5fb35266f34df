"""The native dlt source on a mocked API: pagination, children, 404s, retries, redirects,
secrets, incremental."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import requests_mock

import dlt_bridge  # noqa: F401  (telemetry off by default)
from analytics_api.errors import (
    AnalyticsAPIError,
    AuthenticationError,
    PaginationError,
    ParentNotFoundError,
    RecordError,
    RedirectRefusedError,
    ResponseFormatError,
    RetryBudgetExhaustedError,
)
from analytics_api.timestamps import latest_timestamp
from analytics_source import analytics_source
from tests.servers import Reply, Request, ScriptedServer, error, page
from tests.unit.mockapi import BASE_URL, Pages, queries, rec, serve_apps_with_children

API_KEY = "sk_native_SECRET_91c0"


@pytest.fixture
def mocker() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        yield m


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits between retries (the client sleeps through `time.sleep`), recorded, not slept."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def extract(stream: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Rows of one stream, without a pipeline (dlt keeps incremental state in memory)."""
    source = analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(stream)
    return list(source)


def root_cause(exc: BaseException) -> BaseException:
    """The original error inside dlt's wrappers (`__cause__` / `exception`)."""
    while exc.__cause__ is not None or getattr(exc, "exception", None) is not None:
        exc = exc.__cause__ or exc.exception  # type: ignore[attr-defined]
    return exc


def chain_text(exc: BaseException) -> str:
    """Every message of an exception chain, dlt's wrappers included."""
    texts = []
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        texts.append(f"{e!s} {e!r}")
        stack.extend([e.__cause__, e.__context__, getattr(e, "exception", None)])
    return "\n".join(texts)


# -- pagination -------------------------------------------------------------------------------


def test_paginator_stops_on_done_although_last_iterator_is_set(
    mocker: requests_mock.Mocker,
) -> None:
    records = [rec(f"app_{i}") for i in range(5)]
    mocker.get(BASE_URL + "/v1/app", json=Pages(records))
    rows = extract("applications", page_size=2)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    # three pages, the last one with iterator "app_4" and done: true, and no fourth request
    assert queries(mocker, "/v1/app") == [
        {"limit": ["2"]},
        {"limit": ["2"], "iterator": ["app_1"]},
        {"limit": ["2"], "iterator": ["app_3"]},
    ]
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in mocker.request_history)


def test_single_page_and_empty_list_are_one_request_each(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", json=Pages([rec("app_1")]))
    mocker.get(
        BASE_URL + "/v1/operational-webhook/endpoint",
        json={"data": [], "iterator": None, "prevIterator": None, "done": True},
    )
    assert len(extract("applications")) == 1
    assert extract("webhook_endpoint") == []
    assert queries(mocker, "/v1/app") == [{"limit": ["250"]}]
    assert queries(mocker, "/v1/operational-webhook/endpoint") == [{"limit": ["250"]}]


def test_event_types_ask_for_archived_ones(mocker: requests_mock.Mocker) -> None:
    mocker.get(
        BASE_URL + "/v1/event-type",
        json=Pages([{"uuid": "u1", "name": "a", "updatedAt": "2024-01-01T00:00:00Z"}], "uuid"),
    )
    assert [r["uuid"] for r in extract("event_types")] == ["u1"]
    assert queries(mocker, "/v1/event-type") == [{"limit": ["250"], "include_archived": ["true"]}]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"data": [rec("a")], "iterator": None, "done": False}, PaginationError),
        ({"data": [rec("a")], "iterator": "a"}, ResponseFormatError),
        ({"items": [rec("a")], "iterator": "a", "done": True}, ResponseFormatError),
        ({"data": {"id": "a"}, "iterator": "a", "done": True}, ResponseFormatError),
        ([rec("a")], ResponseFormatError),
    ],
    ids=["done-false-null-iterator", "no-done", "no-data", "data-not-list", "bare-list"],
)
def test_malformed_pages_fail_clearly(
    mocker: requests_mock.Mocker, body: Any, error: type[Exception]
) -> None:
    mocker.get(BASE_URL + "/v1/app", json=body)
    with pytest.raises(Exception) as info:
        extract("applications")
    assert isinstance(root_cause(info.value), error)
    assert "GET /v1/app" in str(root_cause(info.value))
    assert len(mocker.request_history) == 1


def test_repeated_cursor_is_an_error_not_an_endless_loop(mocker: requests_mock.Mocker) -> None:
    page = {"data": [rec("a")], "iterator": "a", "prevIterator": None, "done": False}
    mocker.get(BASE_URL + "/v1/app", json=page)
    with pytest.raises(Exception) as info:
        extract("applications")
    assert isinstance(root_cause(info.value), PaginationError)
    assert len(mocker.request_history) == 2


@pytest.mark.parametrize("page_size", [0, 251])
def test_page_size_outside_the_api_limit_is_refused(
    mocker: requests_mock.Mocker, page_size: int
) -> None:
    with pytest.raises(ValueError, match=r"'page_size': must be >= 1 and <= 250"):
        analytics_source(BASE_URL, API_KEY, page_size=page_size)
    assert mocker.call_count == 0


def test_page_size_is_sent_as_limit(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", json=Pages([rec("app_1")]))
    extract("applications", page_size=17)
    assert queries(mocker, "/v1/app") == [{"limit": ["17"]}]


# -- children ---------------------------------------------------------------------------------


def test_children_get_the_parent_id_under_the_bridge_column_name(
    mocker: requests_mock.Mocker,
) -> None:
    apps = [rec(f"app_{i}") for i in range(5)]
    children = serve_apps_with_children(mocker, apps, per_app=3)
    rows = extract("endpoints", page_size=2)
    expected = [(c["id"], app) for app, cs in children.items() for c in cs]
    assert sorted((r["id"], r["app_id"]) for r in rows) == sorted(expected)
    assert not any(k.startswith("_applications") for r in rows for k in r)
    # each app's child path once (3 records fit in... two pages of 2), parents listed once
    for app in apps:
        assert len(queries(mocker, f"/v1/app/{app['id']}/endpoint")) == 2
    assert len(queries(mocker, "/v1/app")) == 3


@pytest.mark.parametrize("parallelized", [True, False], ids=["parallel", "sequential"])
def test_child_404_means_parent_deleted_and_is_skipped(
    mocker: requests_mock.Mocker, caplog: pytest.LogCaptureFixture, parallelized: bool
) -> None:
    apps = [rec("app_0"), rec("app_1"), rec("app_2")]
    serve_apps_with_children(mocker, apps)
    mocker.get(
        BASE_URL + "/v1/app/app_1/endpoint",
        status_code=404,
        json={"code": "not_found", "detail": "application not found"},
    )
    with caplog.at_level(logging.WARNING, logger="analytics_source"):
        rows = extract("endpoints", parallelized=parallelized)
    assert [(r["id"], r["app_id"]) for r in rows] == [
        ("ep_0_0", "app_0"),
        ("ep_0_1", "app_0"),
        ("ep_2_0", "app_2"),
        ("ep_2_1", "app_2"),
    ]  # parent order, whatever the concurrency
    assert len(queries(mocker, "/v1/app/app_1/endpoint")) == 1  # a 404 is not retried
    skipped = [
        r for r in caplog.records if r.levelno == logging.WARNING and "app_1" in (r.args or ())
    ]
    assert len(skipped) == 1


def test_child_403_is_not_skipped(mocker: requests_mock.Mocker) -> None:
    serve_apps_with_children(mocker, [rec("app_0")])
    mocker.get(BASE_URL + "/v1/app/app_0/endpoint", status_code=403, json={"code": "forbidden"})
    with pytest.raises(Exception, match="403") as info:
        extract("endpoints")
    assert isinstance(root_cause(info.value), AuthenticationError)


def test_top_level_404_is_not_skipped(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", status_code=404, json={"code": "not_found"})
    with pytest.raises(Exception, match="404") as info:
        extract("applications")
    cause = root_cause(info.value)
    assert isinstance(cause, AnalyticsAPIError)
    assert not isinstance(cause, ParentNotFoundError)


def test_record_without_primary_key_fails_clearly(mocker: requests_mock.Mocker) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        json=Pages([rec("app_0"), {"updatedAt": "2024-01-01T00:00:00Z", "id": None}]),
    )
    with pytest.raises(Exception) as info:
        extract("applications")
    assert "no primary key 'id'" in str(info.value)
    assert isinstance(root_cause(info.value), RecordError)


# -- retries ----------------------------------------------------------------------------------

OK_PAGE = {"json": {"data": [rec("app_1")], "iterator": "app_1", "done": True}}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_three_retries_then_success(
    mocker: requests_mock.Mocker, sleeps: list[float], status: int
) -> None:
    mocker.get(BASE_URL + "/v1/app", [{"status_code": status}] * 3 + [OK_PAGE])
    assert [r["id"] for r in extract("applications")] == ["app_1"]
    assert mocker.call_count == 4  # 1 try + 3 retries
    assert sleeps == [2, 4, 8]


def test_gives_up_after_three_retries(mocker: requests_mock.Mocker, sleeps: list[float]) -> None:
    mocker.get(BASE_URL + "/v1/app", status_code=503, json={"code": "unavailable"})
    with pytest.raises(Exception, match="503") as info:
        extract("applications")
    assert isinstance(root_cause(info.value), RetryBudgetExhaustedError)
    assert mocker.call_count == 4
    assert sleeps == [2, 4, 8]


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422, 501])
def test_other_statuses_are_not_retried(
    mocker: requests_mock.Mocker, sleeps: list[float], status: int
) -> None:
    mocker.get(BASE_URL + "/v1/app", status_code=status, json={"code": "x", "detail": "no"})
    with pytest.raises(Exception, match=str(status)) as info:
        extract("applications")
    assert mocker.call_count == 1
    assert sleeps == []
    assert API_KEY not in str(info.value)


def test_retry_after_header_is_honoured(mocker: requests_mock.Mocker, sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mocker.get(
        BASE_URL + "/v1/app",
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}},
            {"status_code": 429, "headers": {"Retry-After": when}},
            {"status_code": 429},  # no header: the exponential schedule (third retry: 8 s)
            OK_PAGE,
        ],
    )
    assert len(extract("applications")) == 1
    assert sleeps[0] == 7
    assert 25 <= sleeps[1] <= 31
    assert sleeps[2] == 8


def test_retry_after_zero_means_at_once(mocker: requests_mock.Mocker, sleeps: list[float]) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}},
            {"status_code": 503, "headers": {"Retry-After": "0"}},
            OK_PAGE,
        ],
    )
    assert len(extract("applications")) == 1
    assert mocker.call_count == 3
    assert sleeps == [0, 0]


def test_network_errors_and_broken_bodies_are_retried(
    mocker: requests_mock.Mocker, sleeps: list[float]
) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        [
            {"exc": requests.exceptions.ConnectionError("reset by peer")},
            {"status_code": 200, "text": '{"data": [{"id": "app_1", "upd'},  # cut short
            {"exc": requests.exceptions.ReadTimeout("slow")},
            OK_PAGE,
        ],
    )
    assert len(extract("applications")) == 1
    assert mocker.call_count == 4
    assert sleeps == [2, 4, 8]


def test_retry_policy_is_configurable(mocker: requests_mock.Mocker, sleeps: list[float]) -> None:
    mocker.get(BASE_URL + "/v1/app", status_code=500)
    with pytest.raises(Exception, match="500"):
        extract("applications", max_retries=1, backoff_factor=0.5)
    assert mocker.call_count == 2
    assert sleeps == [0.5]


def test_child_requests_are_retried_too(mocker: requests_mock.Mocker, sleeps: list[float]) -> None:
    serve_apps_with_children(mocker, [rec("app_0")])
    good = Pages([rec("ep_0")])
    mocker.get(
        BASE_URL + "/v1/app/app_0/endpoint",
        [{"status_code": 502}, {"status_code": 200, "json": good}],
    )
    assert [r["id"] for r in extract("endpoints")] == ["ep_0"]
    assert sleeps == [2]


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


def test_missing_replication_key_fails_clearly(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", json=Pages([{"id": "app_0", "updatedAt": None}]))
    with pytest.raises(Exception, match="no replication key 'updatedAt'"):
        extract("applications")


def test_html_page_with_status_200_is_retried_then_fails_clearly(
    mocker: requests_mock.Mocker, sleeps: list[float]
) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        status_code=200,
        text="<html><body>Bad gateway (proxy)</body></html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(Exception) as info:
        extract("applications")
    assert mocker.call_count == 4
    assert isinstance(root_cause(info.value), RetryBudgetExhaustedError)
    assert "Bad gateway" in str(root_cause(info.value))  # an excerpt says what came back


def test_fields_outside_the_schema_are_dropped_like_the_tap_does(
    mocker: requests_mock.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    hook = {"id": "ep_1", "updatedAt": "2024-01-01T00:00:00Z", "rateLimit": 5, "throttleRate": 9}
    mocker.get(
        BASE_URL + "/v1/operational-webhook/endpoint", json=Pages([hook, dict(hook, id="ep_2")])
    )
    with caplog.at_level(logging.WARNING, logger="analytics_source"):
        rows = extract("webhook_endpoint")
    assert [sorted(r) for r in rows] == [["_sdc_sequence", "id", "rateLimit", "updatedAt"]] * 2
    warned = [r.args for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [("webhook_endpoint", "throttleRate")]  # once per stream and field


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "ep_1", "updatedAt": "2024-01-01T00:00:00Z", "rateLimit": "5"}, "'rateLimit'"),
        ({"id": "ep_1", "updatedAt": "2024-01-01T00:00:00Z", "disabled": 1}, "'disabled'"),
        ({"id": "ep_1", "updatedAt": "2024-13-45T00:00:00Z"}, "'updatedAt'"),
        ({"id": 7, "updatedAt": "2024-01-01T00:00:00Z"}, "'id'"),
    ],
    ids=["int-as-string", "bool-as-int", "bad-date", "int-key"],
)
def test_values_of_the_wrong_type_fail_the_run(
    mocker: requests_mock.Mocker, record: dict[str, Any], message: str
) -> None:
    """dlt would add a variant column (`rate_limit__v_text`); the contract's validator refuses."""
    mocker.get(BASE_URL + "/v1/operational-webhook/endpoint", json=Pages([record]))
    with pytest.raises(Exception) as info:
        extract("webhook_endpoint")
    cause = root_cause(info.value)
    assert isinstance(cause, RecordError)
    text = str(cause)
    assert message in text and "stream 'webhook_endpoint'" in text
    assert f"id={record['id']!r}" in text  # the record's key


# -- redirects and secrets ----------------------------------------------------------------------

OTHER_HOST = "https://elsewhere.example.net"


@pytest.mark.parametrize("stream", ["applications", "endpoints"])
def test_a_redirect_to_another_host_is_refused_and_that_host_gets_nothing(
    mocker: requests_mock.Mocker, sleeps: list[float], stream: str
) -> None:
    serve_apps_with_children(mocker, [rec("app_0")])
    path = "/v1/app" if stream == "applications" else "/v1/app/app_0/endpoint"
    mocker.get(BASE_URL + path, status_code=302, headers={"Location": OTHER_HOST + path})
    elsewhere = mocker.get(OTHER_HOST + path, json=Pages([rec("stolen")]))
    with pytest.raises(Exception) as info:
        extract(stream)
    assert isinstance(root_cause(info.value), RedirectRefusedError)
    assert elsewhere.call_count == 0
    assert all(urlsplit(r.url).hostname == "api.example.com" for r in mocker.request_history)
    assert len(queries(mocker, path)) == 1  # refused at once, not retried
    assert sleeps == []


def test_a_body_echoing_the_key_never_reaches_logs_or_errors(
    mocker: requests_mock.Mocker, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    echo = f"<html>upstream said: Bearer {API_KEY} is {API_KEY}</html>"
    mocker.get(
        BASE_URL + "/v1/app",
        [
            {"status_code": 500, "text": echo},  # retried: the retry warning quotes the body
            {"status_code": 200, "text": echo},  # not JSON: retried and quoted again
            {"status_code": 401, "json": {"code": "unauthorized", "detail": f"bad key {API_KEY}"}},
        ],
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        extract("applications")
    assert isinstance(root_cause(info.value), AuthenticationError)
    assert len(sleeps) == 2  # both retries happened (and were logged)
    assert API_KEY not in caplog.text
    assert API_KEY not in chain_text(info.value)
    assert "bad key ***" in str(root_cause(info.value))


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
