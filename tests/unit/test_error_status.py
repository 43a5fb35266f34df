"""`AnalyticsAPIError` carries the HTTP status of the response that caused it (None without one),
so callers such as `dlt-bridge native`'s hints branch on it instead of reading the message."""

from __future__ import annotations

import pickle

import pytest
import requests
import requests_mock

import analytics_source.cli as native
from analytics_api.client import ApiClient, ClientSettings
from analytics_api.errors import (
    AnalyticsAPIError,
    AuthenticationError,
    ParentNotFoundError,
    RedirectRefusedError,
    ResponseFormatError,
    RetryBudgetExhaustedError,
)
from analytics_api.retry import RetryPolicy

BASE = "https://api.example.com"
KEY = "sk_test_status_0a1b"


def _client() -> ApiClient:
    policy = RetryPolicy(max_retries=1, backoff_factor=0)
    return ApiClient(ClientSettings(base_url=BASE, api_key=KEY, retry=policy, max_concurrency=1))


def _fail(mock: dict, *, child: bool = False) -> AnalyticsAPIError:
    with requests_mock.Mocker() as api:
        api.get(BASE + "/v1/app", **mock)
        with pytest.raises(AnalyticsAPIError) as info:
            list(_client().iter_pages("applications", "/v1/app", child=child))
    return info.value


@pytest.mark.parametrize(
    ("mock", "child", "kind", "status"),
    [
        (
            {"status_code": 401, "json": {"code": "x", "detail": "no"}},
            False,
            AuthenticationError,
            401,
        ),
        ({"status_code": 403}, False, AuthenticationError, 403),
        ({"status_code": 422}, False, AnalyticsAPIError, 422),
        ({"status_code": 404}, True, ParentNotFoundError, 404),
        ({"status_code": 302, "headers": {"Location": "/x"}}, False, RedirectRefusedError, 302),
        ({"status_code": 200, "json": {"data": 1}}, False, ResponseFormatError, 200),
        ({"status_code": 503}, False, RetryBudgetExhaustedError, 503),
        ({"exc": requests.ConnectionError("refused")}, False, RetryBudgetExhaustedError, None),
    ],
)
def test_each_error_carries_its_status(
    mock: dict, child: bool, kind: type[AnalyticsAPIError], status: int | None
) -> None:
    error = _fail(mock, child=child)
    assert type(error) is kind
    assert error.status == status
    assert pickle.loads(pickle.dumps(error)).status == status  # survives a process boundary
    assert KEY not in str(error)


@pytest.mark.parametrize(
    ("status", "hint"), [(401, "SOURCES__ANALYTICS__API_KEY"), (403, "--streams"), (422, "--page")]
)
def test_the_native_hint_comes_from_the_status(status: int, hint: str) -> None:
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = AnalyticsAPIError("no status in this text", status=status)
    assert hint in native._hint(wrapped)
    assert native._hint(AnalyticsAPIError("HTTP 401 in the text only")) == ""
