"""The native dlt source on a mocked API: pagination, children, 404s, retries, redirects,
secrets, incremental."""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt
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

BASE_URL = "https://api.example.com"
API_KEY = "sk_native_SECRET_91c0"


# -- a tiny paginating fake ---------------------------------------------------------------------


class Served:
    """Serves `records` in pages like the API: `iterator` is the last id even on the last page."""

    def __init__(self, records: list[dict[str, Any]], key: str = "id") -> None:
        self.records = records
        self.key = key

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        query = parse_qs(urlsplit(request.url).query)
        limit = int(query.get("limit", ["50"])[0])
        cursor = query.get("iterator", [None])[0]
        start = 0
        if cursor is not None:
            start = [str(r[self.key]) for r in self.records].index(cursor) + 1
        page = self.records[start : start + limit]
        return {
            "data": [dict(r) for r in page],
            "iterator": str(page[-1][self.key]) if page else None,
            "prevIterator": None,
            "done": start + limit >= len(self.records),
        }


def queries(mocker: requests_mock.Mocker, path: str) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(r.url).query)
        for r in mocker.request_history
        if urlsplit(r.url).path == path
    ]


def rec(ident: str, updated: str = "2024-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "createdAt": "2023-12-01T00:00:00Z", "updatedAt": updated, **extra}


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
    mocker.get(BASE_URL + "/v1/app", json=Served(records))
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
    mocker.get(BASE_URL + "/v1/app", json=Served([rec("app_1")]))
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
        json=Served([{"uuid": "u1", "name": "a", "updatedAt": "2024-01-01T00:00:00Z"}], "uuid"),
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
    with pytest.raises(ValueError, match=r"1\.\.250"):
        analytics_source(BASE_URL, API_KEY, page_size=page_size)
    assert mocker.call_count == 0


def test_page_size_is_sent_as_limit(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", json=Served([rec("app_1")]))
    extract("applications", page_size=17)
    assert queries(mocker, "/v1/app") == [{"limit": ["17"]}]


# -- children ---------------------------------------------------------------------------------


def serve_apps_with_children(
    mocker: requests_mock.Mocker, apps: list[dict[str, Any]], per_app: int = 2
) -> dict[str, list[dict[str, Any]]]:
    mocker.get(BASE_URL + "/v1/app", json=Served(apps))
    children: dict[str, list[dict[str, Any]]] = {}
    for n, app in enumerate(apps):
        children[app["id"]] = [
            rec(f"ep_{n}_{j}", f"2024-02-{10 - n:02d}T00:00:0{j}Z", url=f"https://h/{n}/{j}")
            for j in range(per_app)
        ]
        mocker.get(f"{BASE_URL}/v1/app/{app['id']}/endpoint", json=Served(children[app["id"]]))
    return children


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
        json=Served([rec("app_0"), {"updatedAt": "2024-01-01T00:00:00Z", "id": None}]),
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
    good = Served([rec("ep_0")])
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


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "native_unit",
        destination=dlt.destinations.duckdb(str(tmp_path / "unit.duckdb")),
        dataset_name="analytics",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def _load(pipeline: dlt.Pipeline, *streams: str, **kwargs: Any) -> dict[str, int]:
    source = analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(*streams)
    pipeline.run(source)
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {s: counts.get(s, 0) for s in streams}


def _ids(pipeline: dlt.Pipeline, table: str) -> list[str]:
    with pipeline.sql_client() as client:
        return [r[0] for r in client.execute_sql(f"SELECT id FROM {table} ORDER BY id")]


def test_incremental_filters_by_time_not_by_string(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    records = [
        rec("app_a", "2024-01-01T00:00:00Z"),  # the newest of the first run
        rec("app_b", "2023-06-01T12:00:00.123456789Z"),
        rec("app_c", "2023-06-01T12:00:00.1Z"),
    ]
    served = Served(records)
    mocker.get(BASE_URL + "/v1/app", json=served)
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "applications") == {"applications": 3}
    state = pipeline.state["sources"]["analytics"]["resources"]["applications"]["incremental"]
    assert state["updatedAt"]["last_value"] == "2024-01-01T00:00:00.000000000Z"

    # app_b moves half a second past the bookmark: as a raw string "...00.5Z" < "...00Z"
    served.records = [
        rec("app_a", "2024-01-01T00:00:00.000Z"),  # unchanged, written with another precision
        rec("app_b", "2024-01-01T00:00:00.5Z"),
        rec("app_c", "2023-06-01T12:00:00.100000Z"),  # unchanged
        rec("app_d", "2023-12-31T23:59:59.999999999Z"),  # new, but older than the bookmark
    ]
    assert _load(pipeline, "applications") == {"applications": 1}
    assert _ids(pipeline, "applications") == ["app_a", "app_b", "app_c"]

    served.records.append(rec("app_e", "2024-01-01T00:00:00.500000001Z"))
    assert _load(pipeline, "applications") == {"applications": 1}
    assert _ids(pipeline, "applications") == ["app_a", "app_b", "app_c", "app_e"]


def test_start_date_is_inclusive_and_format_blind(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        json=Served(
            [
                rec("app_a", "2024-03-01T00:00:00Z"),
                rec("app_b", "2024-02-29T23:59:59.999999Z"),
                rec("app_c", "2024-03-01T00:00:00.000000001Z"),
            ]
        ),
    )
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "applications", start_date="2024-03-01T00:00:00.000Z") == {
        "applications": 2
    }
    assert _ids(pipeline, "applications") == ["app_a", "app_c"]


def test_children_of_unchanged_parents_are_visited(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    apps = [rec(f"app_{i}", "2024-01-01T00:00:00Z") for i in range(5)]
    children = serve_apps_with_children(mocker, apps, per_app=2)
    pipeline = _pipeline(tmp_path)
    # parents come in 3 pages of 2; children of later pages are OLDER than earlier ones
    # (2024-02-10, -09, ...): nothing may be dropped inside the run
    assert _load(pipeline, "applications", "endpoints", page_size=2) == {
        "applications": 5,
        "endpoints": 10,
    }
    # one endpoint of the last app changes; no application does
    changed = children["app_4"][1]
    changed["updatedAt"] = "2024-02-10T00:00:01.5Z"
    changed["url"] = "https://h/changed"
    mocker.reset_mock()
    assert _load(pipeline, "applications", "endpoints", page_size=2) == {
        "applications": 0,
        "endpoints": 1,
    }
    for app in apps:
        assert queries(mocker, f"/v1/app/{app['id']}/endpoint")
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT app_id, url FROM endpoints WHERE id = 'ep_4_1'")
    assert rows == [("app_4", "https://h/changed")]


def test_tokens_replicate_on_created_at(mocker: requests_mock.Mocker, tmp_path: Path) -> None:
    tokens = [
        {"id": "key_1", "name": "a", "createdAt": "2024-01-01T00:00:00Z"},
        {"id": "key_2", "name": None, "createdAt": "2024-01-02T00:00:00.25Z"},
    ]
    served = Served(tokens)
    mocker.get(BASE_URL + "/v1/management/authentication/api-token", json=served)
    pipeline = _pipeline(tmp_path)
    assert _load(pipeline, "tokens") == {"tokens": 2}
    served.records = [*tokens, {"id": "key_3", "createdAt": "2024-01-02T00:00:00.3Z"}]
    assert _load(pipeline, "tokens") == {"tokens": 1}


def test_missing_replication_key_fails_clearly(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", json=Served([{"id": "app_0", "updatedAt": None}]))
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
        BASE_URL + "/v1/operational-webhook/endpoint", json=Served([hook, dict(hook, id="ep_2")])
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
    mocker.get(BASE_URL + "/v1/operational-webhook/endpoint", json=Served([record]))
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
    elsewhere = mocker.get(OTHER_HOST + path, json=Served([rec("stolen")]))
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
    """A real local HTTP server (requests-mock serialises requests): `apps` applications with
    two endpoints each; counts child requests in flight, and with `parties` holds each child
    request until that many are in flight together (a barrier: no timing involved)."""

    def __init__(self, apps: int, parties: int = 0) -> None:
        self.apps = apps
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.paths: list[str] = []
        self.barrier = threading.Barrier(parties, timeout=10) if parties else None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _page(self, path: str) -> dict[str, Any]:
        if path == "/v1/app":
            return {"data": [rec(f"app_{i}") for i in range(self.apps)], "done": True}
        app = path.split("/")[3]
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            return {"data": [rec(f"ep_{app[4:]}_{j}") for j in range(2)], "done": True}
        finally:
            with self.lock:
                self.now -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with outer.lock:
                    outer.paths.append(path)
                try:
                    body, status = json.dumps(outer._page(path)).encode(), 200
                except threading.BrokenBarrierError:
                    body, status = b'{"code": "barrier"}', 400
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


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


def test_state_lives_under_the_stream_and_its_replication_key(
    mocker: requests_mock.Mocker, tmp_path: Path
) -> None:
    """The keys the previous versions used, so an existing pipeline continues incrementally."""
    apps = [rec("app_0", "2024-01-01T00:00:00.5Z")]
    serve_apps_with_children(mocker, apps, per_app=1)
    pipeline = _pipeline(tmp_path)
    _load(pipeline, "applications", "endpoints")
    resources = pipeline.state["sources"]["analytics"]["resources"]
    assert resources["applications"]["incremental"]["updatedAt"]["last_value"] == (
        "2024-01-01T00:00:00.500000000Z"
    )
    assert resources["endpoints"]["incremental"]["updatedAt"]["last_value"] == (
        "2024-02-10T00:00:00.000000000Z"
    )
