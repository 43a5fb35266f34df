"""The native dlt source on a mocked API: pagination, children, 404s, retries, incremental."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt
import pytest
import requests
import requests_mock

from dlt_bridge.native import (
    PAGINATOR_NAME,
    AnalyticsPaginationError,
    AnalyticsRecordError,
    DonePaginator,
    RetryPolicy,
    build_analytics_source,
    latest_timestamp,
)

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
            start = [r[self.key] for r in self.records].index(cursor) + 1
        page = self.records[start : start + limit]
        return {
            "data": [dict(r) for r in page],
            "iterator": page[-1][self.key] if page else None,
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
    """Waits between retries (tenacity sleeps through `time.sleep`), recorded, not slept."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def extract(stream: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Rows of one stream, without a pipeline (dlt keeps incremental state in memory)."""
    source = build_analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(stream)
    return list(source)


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
    ("body", "message"),
    [
        ({"data": [rec("a")], "iterator": None, "done": False}, "without an iterator"),
        ({"data": [rec("a")], "iterator": "a"}, "`done` (boolean) are required"),
        ({"items": [rec("a")], "iterator": "a", "done": True}, "`data` (array)"),
        ({"data": {"id": "a"}, "iterator": "a", "done": True}, "`data` (array)"),
        ([rec("a")], "not a list page"),
    ],
    ids=["done-false-null-iterator", "no-done", "no-data", "data-not-list", "bare-list"],
)
def test_malformed_pages_fail_clearly(
    mocker: requests_mock.Mocker, body: Any, message: str
) -> None:
    mocker.get(BASE_URL + "/v1/app", json=body)
    with pytest.raises(Exception) as info:
        extract("applications")
    assert message in str(info.value)
    assert "GET /v1/app" in str(info.value)
    assert len(mocker.request_history) == 1


def test_repeated_cursor_is_an_error_not_an_endless_loop(mocker: requests_mock.Mocker) -> None:
    page = {"data": [rec("a")], "iterator": "a", "prevIterator": None, "done": False}
    mocker.get(BASE_URL + "/v1/app", json=page)
    with pytest.raises(Exception, match="a second time"):
        extract("applications")
    assert len(mocker.request_history) == 2


def test_paginator_is_registered_and_validates_its_limit() -> None:
    from dlt.sources.rest_api.config_setup import create_paginator

    paginator = create_paginator({"type": PAGINATOR_NAME, "limit": 10})  # type: ignore[typeddict-item]
    assert isinstance(paginator, DonePaginator) and paginator.limit == 10
    with pytest.raises(ValueError, match=r"1\.\.250"):
        DonePaginator(limit=251)
    with pytest.raises(ValueError, match=r"1\.\.250"):
        build_analytics_source(BASE_URL, API_KEY, page_size=0)


def test_paginator_state_resets_on_a_new_request() -> None:
    paginator = DonePaginator(limit=3)
    first = requests.Request("GET", BASE_URL + "/v1/app", params={})
    paginator.init_request(first)
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps({"data": [], "iterator": "x", "done": False}).encode()
    paginator.update_state(response)
    paginator.update_request(first)
    assert first.params == {"limit": 3, "iterator": "x"}
    second = requests.Request("GET", BASE_URL + "/v1/app", params={"iterator": "stale"})
    paginator.init_request(second)
    assert second.params == {"limit": 3}
    assert paginator.has_next_page
    paginator.update_state(response)  # "x" again, but in a new walk: not a loop
    with pytest.raises(AnalyticsPaginationError):
        paginator.update_state(response)  # within the same walk it is


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


def test_child_404_means_parent_deleted_and_is_skipped(mocker: requests_mock.Mocker) -> None:
    apps = [rec("app_0"), rec("app_1"), rec("app_2")]
    serve_apps_with_children(mocker, apps)
    mocker.get(
        BASE_URL + "/v1/app/app_1/endpoint",
        status_code=404,
        json={"code": "not_found", "detail": "application not found"},
    )
    rows = extract("endpoints")
    assert sorted({r["app_id"] for r in rows}) == ["app_0", "app_2"]
    assert len(queries(mocker, "/v1/app/app_1/endpoint")) == 1  # a 404 is not retried


def test_child_403_is_not_skipped(mocker: requests_mock.Mocker) -> None:
    serve_apps_with_children(mocker, [rec("app_0")])
    mocker.get(BASE_URL + "/v1/app/app_0/endpoint", status_code=403, json={"code": "forbidden"})
    with pytest.raises(Exception, match="403"):
        extract("endpoints")


def test_top_level_404_is_not_skipped(mocker: requests_mock.Mocker) -> None:
    mocker.get(BASE_URL + "/v1/app", status_code=404, json={"code": "not_found"})
    with pytest.raises(Exception, match="404"):
        extract("applications")


def test_record_without_primary_key_fails_clearly(mocker: requests_mock.Mocker) -> None:
    mocker.get(
        BASE_URL + "/v1/app",
        json=Served([rec("app_0"), {"updatedAt": "2024-01-01T00:00:00Z", "id": None}]),
    )
    with pytest.raises(Exception) as info:
        extract("applications")
    assert "no primary key 'id'" in str(info.value)
    assert isinstance(_root_cause(info.value), AnalyticsRecordError)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or getattr(exc, "exception", None) is not None:
        exc = exc.__cause__ or exc.exception  # type: ignore[attr-defined]
    return exc


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
    with pytest.raises(Exception, match="503"):
        extract("applications")
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
        extract("applications", retry=RetryPolicy(max_retries=1, backoff_factor=0.5))
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
    source = build_analytics_source(BASE_URL, API_KEY, **kwargs).with_resources(*streams)
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
    assert "not JSON" in str(info.value) and "Bad gateway" in str(info.value)
    assert isinstance(_root_cause(info.value), AnalyticsPaginationError)


def test_fields_outside_the_schema_are_dropped_like_the_tap_does(
    mocker: requests_mock.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    hook = {"id": "ep_1", "updatedAt": "2024-01-01T00:00:00Z", "rateLimit": 5, "throttleRate": 9}
    mocker.get(
        BASE_URL + "/v1/operational-webhook/endpoint", json=Served([hook, dict(hook, id="ep_2")])
    )
    import dlt_bridge.native as native

    native.log.propagate = True
    try:
        with caplog.at_level("WARNING", logger="dlt_bridge"):
            rows = extract("webhook_endpoint")
    finally:
        native.log.propagate = False
    assert [sorted(r) for r in rows] == [["_sdc_sequence", "id", "rateLimit", "updatedAt"]] * 2
    assert caplog.text.count("'throttleRate' is not in the stream's schema") == 1


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
    """dlt would add a variant column (`rate_limit__v_text`); the bridge's validator refuses."""
    mocker.get(BASE_URL + "/v1/operational-webhook/endpoint", json=Served([record]))
    with pytest.raises(Exception) as info:
        extract("webhook_endpoint")
    assert message in str(info.value) and "stream 'webhook_endpoint'" in str(info.value)
