"""The contract's retry policy: which statuses, how many attempts, how long between them."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest
import requests

from analytics_api.client import ApiClient, ClientSettings
from analytics_api.errors import AnalyticsAPIError, ParentNotFoundError
from analytics_api.retry import RetryPolicy, retry_after_seconds
from tests.unit.mockapi import (
    API_KEY,
    BASE_URL,
    config,
    make_records,
    mock_api,
    run_tap,
    serve_empty_other_lists,
)

OK = {
    "json": {
        "data": [{"id": "app_1", "updatedAt": "2024-01-01T00:00:00Z"}],
        "iterator": "app_1",
        "done": True,
    }
}


_sink: list[list[float]] = [[]]
"""Where the patched `time.sleep` records waits: the list of the test's latest `_client`."""


@pytest.fixture(autouse=True)
def _record_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    _sink[0] = []
    monkeypatch.setattr(time, "sleep", lambda seconds: _sink[0].append(seconds))


def _client(waits: list[float], **retry: float) -> ApiClient:
    _sink[0] = waits
    return ApiClient(ClientSettings(BASE_URL, API_KEY, retry=RetryPolicy(**retry)))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_then_success(status: int) -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(BASE_URL + "/v1/app", [{"status_code": status}] * 3 + [OK])
        page = _client(waits).get_page("applications", "/v1/app", {"limit": 250})
        assert api.mocker.call_count == 4  # 1 try + 3 retries
    assert waits == [2, 4, 8]
    assert page.done and page.data[0]["id"] == "app_1"


def test_gives_up_after_three_retries_with_a_clear_message() -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app",
            status_code=503,
            json={"code": "unavailable", "detail": "maintenance"},
        )
        with pytest.raises(AnalyticsAPIError) as info:
            _client(waits).get_page("applications", "/v1/app", {"limit": 250})
        assert api.mocker.call_count == 4
    message = str(info.value)
    assert "stream 'applications'" in message and "GET /v1/app" in message
    assert "3 retries" in message and "503" in message and "maintenance" in message
    assert API_KEY not in message
    assert waits == [2, 4, 8]


def test_backoff_factor_and_max_retries_are_settings() -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(BASE_URL + "/v1/app", status_code=500)
        with pytest.raises(AnalyticsAPIError):
            _client(waits, max_retries=5, backoff_factor=0.5).get_page("a", "/v1/app", {})
        assert api.mocker.call_count == 6
    assert waits == [0.5, 1, 2, 4, 8]


def test_retry_after_seconds_is_used_instead_of_backoff() -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app",
            [
                {"status_code": 429, "headers": {"Retry-After": "7"}},
                {"status_code": 429},
                OK,
            ],
        )
        _client(waits).get_page("applications", "/v1/app", {})
    assert waits == [7, 4]  # the second retry is retry n=1 of the schedule: 2 * 2**1


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app", [{"status_code": 503, "headers": {"Retry-After": when}}, OK]
        )
        _client(waits).get_page("applications", "/v1/app", {})
    assert len(waits) == 1 and 25 <= waits[0] <= 30


def test_retry_after_parser() -> None:
    assert retry_after_seconds("0") == 0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after_seconds(past) == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_not_retried(status: int) -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app", status_code=status, json={"code": "x", "detail": "nope"}
        )
        with pytest.raises(AnalyticsAPIError):
            _client(waits).get_page("applications", "/v1/app", {})
        assert api.mocker.call_count == 1
    assert waits == []


@pytest.mark.parametrize(
    ("status", "words"), [(401, "missing or wrong"), (403, "lacks permission"), (422, "page_size")]
)
def test_auth_and_validation_errors_say_what_to_do(status: int, words: str) -> None:
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app",
            status_code=status,
            json={"detail": [{"loc": ["query", "limit"], "msg": "too big", "type": "x"}]}
            if status == 422
            else {"code": "auth", "detail": f"bad token {API_KEY}"},
        )
        with pytest.raises(AnalyticsAPIError) as info:
            _client([]).get_page("applications", "/v1/app", {})
    assert words in str(info.value)
    assert API_KEY not in str(info.value)


def test_connection_errors_and_timeouts_are_retried() -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(
            BASE_URL + "/v1/app",
            [
                {"exc": requests.ConnectionError("reset by peer")},
                {"exc": requests.ReadTimeout("read timed out")},
                {"exc": requests.exceptions.ChunkedEncodingError("broken")},
                OK,
            ],
        )
        page = _client(waits).get_page("applications", "/v1/app", {})
    assert waits == [2, 4, 8] and page.done


def test_truncated_json_is_retried_then_reported() -> None:
    waits: list[float] = []
    with mock_api() as api:
        api.mocker.get(BASE_URL + "/v1/app", [{"text": '{"data": [{"id": "app_1"'}] * 4)
        with pytest.raises(AnalyticsAPIError) as info:
            _client(waits).get_page("applications", "/v1/app", {})
    assert "not valid JSON" in str(info.value) and "GET /v1/app" in str(info.value)
    assert waits == [2, 4, 8]


def test_429_pauses_other_workers_too() -> None:
    waits: list[float] = []
    client = _client(waits)
    other_worker = threading.Thread(target=client._pause_everyone, args=(5,))
    other_worker.start()
    other_worker.join()
    with mock_api() as api:
        api.mocker.get(BASE_URL + "/v1/app", **OK)
        client.get_page("applications", "/v1/app", {})
    assert len(waits) == 1 and 4 < waits[0] <= 5


def test_404_on_a_child_path_skips_that_parent_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: None)
    with mock_api() as api:
        api.serve("/v1/app", make_records("app", 3))
        serve_empty_other_lists(api)
        for i in range(3):
            api.serve(f"/v1/app/app_{i:06d}/endpoint", make_records(f"ep{i}", 2))
            api.serve(f"/v1/app/app_{i:06d}/integration", make_records(f"in{i}", 1))
        api.mocker.get(
            BASE_URL + "/v1/app/app_000001/endpoint",
            status_code=404,
            json={"code": "not_found", "detail": "Application not found"},
        )
        out = run_tap(config())
    assert {r["app_id"] for r in out.records("endpoints")} == {"app_000000", "app_000002"}
    assert len(out.records("integrations")) == 3  # the other child stream is unaffected
    assert "app_000001" in caplog.text and "404" in caplog.text


def test_404_on_a_top_level_stream_fails_the_run() -> None:
    with mock_api() as api:
        api.mocker.get(BASE_URL + "/v1/app", status_code=404, json={"code": "nf", "detail": "x"})
        with pytest.raises(AnalyticsAPIError) as info:
            run_tap(config())
    assert not isinstance(info.value, ParentNotFoundError)  # only child paths mean "parent gone"
