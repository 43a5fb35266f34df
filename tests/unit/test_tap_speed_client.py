"""The client's prepared-request shortcut sends what `Session.get(url, params=...)` sends."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import requests_mock

from analytics_api.client import ApiClient, ClientSettings, encode_query

BASE = "https://api.example.com"


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 250},
        {"limit": 5, "include_archived": "true", "iterator": "app_2Zx/+ü =&?#%~._-"},
        {"limit": 1, "iterator": None},
        {"flag": True, "n": 0},
    ],
)
@pytest.mark.parametrize(
    "path", ["/v1/app", "/v1/app/app%2F1%20x/endpoint", "/ingest/api/v1/source/s~1.2_3-4/endpoint"]
)
def test_urls_equal_those_requests_builds(path: str, query: dict[str, Any]) -> None:
    expected = requests.Request("GET", BASE + path, params=query).prepare().url
    prepared = requests.PreparedRequest()
    prepared.prepare_url(BASE + path, encode_query(query))
    assert prepared.url == expected


def _client() -> ApiClient:
    return ApiClient(ClientSettings(base_url=BASE, api_key="sk_test", user_agent="ua/1"))


def test_requests_carry_the_session_headers_and_no_redirect_is_followed() -> None:
    client = _client()
    with requests_mock.Mocker() as mocker:
        mocker.get(BASE + "/v1/app", json={"data": [{"id": "a"}], "done": True, "iterator": "a"})
        for _ in range(2):  # the second request is sent from the copied template
            page = client.get_page("applications", "/v1/app", {"limit": 3, "x": "y z"})
            assert page.data == [{"id": "a"}]
        for request in mocker.request_history:
            assert request.headers["Authorization"] == "Bearer sk_test"
            assert request.headers["User-Agent"] == "ua/1"
            assert request.headers["Accept"] == "application/json"
            assert request.url == BASE + "/v1/app?limit=3&x=y+z"


def test_cookies_in_the_session_are_sent() -> None:
    """A cookie in the session (a load balancer's, say) goes out with every later request."""
    client = _client()
    with requests_mock.Mocker() as mocker:
        mocker.get(BASE + "/v1/app", json={"data": [], "done": True, "iterator": None})
        client.get_page("applications", "/v1/app", {"limit": 1})
        client.session.cookies.set("lb", "node7")
        client.get_page("applications", "/v1/app", {"limit": 1})
        first, second = mocker.request_history
    assert "Cookie" not in first.headers
    assert second.headers["Cookie"] == "lb=node7"
