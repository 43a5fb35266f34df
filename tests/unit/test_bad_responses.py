"""Responses the tap cannot use: a clear error naming stream and path, no loop, no state."""

from __future__ import annotations

import time

import pytest

from analytics_api.errors import AnalyticsAPIError
from tests.unit.mockapi import (
    API_KEY,
    BASE_URL,
    config,
    make_records,
    mock_api,
    run_tap,
    serve_empty_children,
)

APP = "/v1/app"


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: None)


def _run_expecting(error_words: list[str], **mock) -> None:
    with mock_api() as api:
        serve_empty_children(api)
        api.mocker.get(BASE_URL + APP, **mock)
        with pytest.raises(AnalyticsAPIError) as info:
            run_tap(config())
    message = str(info.value)
    assert "stream 'applications'" in message and "GET /v1/app" in message, message
    for word in error_words:
        assert word in message, message
    assert API_KEY not in message
    assert len(message) < 800  # an excerpt, never the whole body


def test_html_error_page() -> None:
    _run_expecting(
        ["not valid JSON", "<html>"], text="<html><body>" + "Bad gateway " * 500 + "</body></html>"
    )


def test_json_without_data() -> None:
    _run_expecting(["data"], json={"items": [], "done": True})


def test_data_not_a_list() -> None:
    _run_expecting(["$.data"], json={"data": {"id": "app_1"}, "done": True, "iterator": "x"})


def test_missing_done() -> None:
    _run_expecting(["done"], json={"data": [], "iterator": None})


def test_record_without_primary_key() -> None:
    _run_expecting(
        ["primary key 'id'"],
        json={
            "data": [{"name": "x", "updatedAt": "2024-01-01T00:00:00Z"}],
            "iterator": "x",
            "done": True,
        },
    )


def test_record_without_replication_key() -> None:
    _run_expecting(
        ["replication key 'updatedAt'"],
        json={"data": [{"id": "app_1"}], "iterator": "app_1", "done": True},
    )


def test_repeated_cursor_is_an_error_not_a_loop() -> None:
    page = {"data": make_records("app", 1), "iterator": "app_000000", "done": False}
    with mock_api() as api:
        serve_empty_children(api)
        api.mocker.get(BASE_URL + APP, json=page)
        with pytest.raises(AnalyticsAPIError, match="a second time"):
            run_tap(config())
        assert len(api.requests_to(APP)) == 2


def test_cursor_cycle_over_several_pages_is_caught() -> None:
    pages = [
        {"json": {"data": make_records("app", 1), "iterator": "A", "done": False}},
        {"json": {"data": make_records("app", 1, start=1), "iterator": "B", "done": False}},
        {"json": {"data": make_records("app", 1, start=2), "iterator": "A", "done": False}},
    ]
    with mock_api() as api:
        serve_empty_children(api)
        api.mocker.get(BASE_URL + APP, pages)
        with pytest.raises(AnalyticsAPIError, match="a second time"):
            run_tap(config())


def test_not_done_without_cursor() -> None:
    _run_expecting(
        ["done=false without an iterator"],
        json={"data": make_records("app", 1), "iterator": None, "done": False},
    )


def test_no_state_is_emitted_past_a_failure() -> None:
    """Records before the failure are emitted; no STATE bookmark covers the failed stream."""
    import io
    import json
    import sys

    from tap_analytics.tap import TapAnalytics

    with mock_api() as api:
        serve_empty_children(api)
        api.mocker.get(
            BASE_URL + APP,
            [
                {"json": {"data": make_records("app", 2), "iterator": "app_000001", "done": False}},
                {"json": {"data": [{"name": "no id"}], "iterator": "z", "done": True}},
            ],
        )
        api.mocker.get(
            BASE_URL + "/v1/app/app_000000/endpoint",
            json={"data": [], "iterator": None, "done": True},
        )
        api.mocker.get(
            BASE_URL + "/v1/app/app_000001/endpoint",
            json={"data": [], "iterator": None, "done": True},
        )
        api.mocker.get(
            BASE_URL + "/v1/app/app_000000/integration",
            json={"data": [], "iterator": None, "done": True},
        )
        api.mocker.get(
            BASE_URL + "/v1/app/app_000001/integration",
            json={"data": [], "iterator": None, "done": True},
        )
        buffer = io.BytesIO()
        out = io.TextIOWrapper(buffer, write_through=True)
        old, sys.stdout = sys.stdout, out
        try:
            tap = TapAnalytics(config=config(), parse_env_config=False)
            with pytest.raises(AnalyticsAPIError):
                tap.sync_all()
        finally:
            tap.message_writer.flush()  # type: ignore[attr-defined]
            sys.stdout = old
    messages = [json.loads(x) for x in buffer.getvalue().decode().splitlines()]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    for state in states:
        assert "replication_key_value" not in state.get("bookmarks", {}).get("applications", {})
