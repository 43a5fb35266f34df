"""Every stream, across several pages, against mocked pages: exact records, exact requests."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from tests.unit.mockapi import (
    config,
    make_records,
    mock_api,
    run_tap,
    serve_empty_other_lists,
    serve_everything,
)

PAGE = 2  # small pages so every stream spans several


def _expected(api, name: str) -> list[dict]:
    definition = STREAMS_BY_NAME[name]
    if not definition.is_child:
        return api.lists[definition.path]
    parent = STREAMS_BY_NAME[definition.parent]
    expected = []
    for parent_record in api.lists[parent.path]:
        pid = parent_record[parent.primary_key]
        path = definition.path.format(**{definition.parent_key: pid})
        expected += [{**r, definition.parent_key: pid} for r in api.lists[path]]
    return expected


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("name", [s.name for s in STREAMS])
def test_records_equal_pages_and_requests_follow_pagination(name: str, concurrency: int) -> None:
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=5, sources=3)
        out = run_tap(config(page_size=PAGE, max_concurrency=concurrency))
        expected = _expected(api, name)
        assert out.records(name) == expected  # count, order, ids and every field
        assert len({r[STREAMS_BY_NAME[name].primary_key] for r in expected}) == len(expected)

        definition = STREAMS_BY_NAME[name]
        paths = (
            [definition.path]
            if not definition.is_child
            else [
                definition.path.format(
                    **{definition.parent_key: p[STREAMS_BY_NAME[definition.parent].primary_key]}
                )
                for p in api.lists[STREAMS_BY_NAME[definition.parent].path]
            ]
        )
        for path in paths:
            records = api.lists[path]
            key = definition.primary_key
            pages = max(1, -(-len(records) // PAGE))
            sent = api.requests_to(path)
            assert len(sent) == pages, f"{path}: {len(sent)} requests for {pages} pages"
            # first request has no iterator, each next one carries the previous page's last id
            assert "iterator" not in sent[0]
            for i, query in enumerate(sent[1:], start=1):
                assert query["iterator"] == [records[i * PAGE - 1][key]]
            assert all(q["limit"] == [str(PAGE)] for q in sent)
            for query in sent:
                for param, value in definition.params.items():
                    assert query[param] == [value]


def test_last_page_with_non_null_iterator_is_not_followed() -> None:
    """Exactly one request when everything fits in one page, though `iterator` is not null."""
    with mock_api() as api:
        api.serve("/v1/app", make_records("app", 3))
        serve_empty_other_lists(api)
        for i in range(3):
            api.serve(f"/v1/app/app_{i:06d}/endpoint", [])
            api.serve(f"/v1/app/app_{i:06d}/integration", [])
        out = run_tap(config())
        assert len(out.records("applications")) == 3
        assert len(api.requests_to("/v1/app")) == 1
        # an empty list is one request too: `done` is true on the first page
        assert len(api.requests_to("/v1/event-type")) == 1


def test_child_records_carry_parent_id_and_each_schema_is_sent_once() -> None:
    with mock_api() as api:
        serve_everything(api, apps=4)
        out = run_tap(config())
    assert {r["app_id"] for r in out.records("endpoints")} == {f"app_{i:06d}" for i in range(4)}
    assert {r["src_id"] for r in out.records("ingest_source_endpoint")} == {
        "src_000000",
        "src_000001",
    }
    schemas = [m["stream"] for m in out.of_type("SCHEMA")]
    assert sorted(schemas) == sorted(s.name for s in STREAMS)


def test_authorization_header_on_every_request() -> None:
    with mock_api() as api:
        serve_everything(api)
        run_tap(config())
        history = api.mocker.request_history
    assert history
    assert all(r.headers["Authorization"] == "Bearer sk_test_SECRET_4f2a9c" for r in history)
    assert all(r.headers["User-Agent"].startswith("tap-analytics/") for r in history)


def test_child_path_parameters_are_url_encoded() -> None:
    with mock_api() as api:
        api.serve(
            "/v1/app", [{"id": "app.with-dots_and/slash", "updatedAt": "2024-01-01T00:00:00Z"}]
        )
        serve_empty_other_lists(api)
        api.serve("/v1/app/app.with-dots_and%2Fslash/endpoint", make_records("ep", 1))
        api.serve("/v1/app/app.with-dots_and%2Fslash/integration", [])
        out = run_tap(config())
    assert [r["app_id"] for r in out.records("endpoints")] == ["app.with-dots_and/slash"]


_UNKNOWN = "is not in the stream's schema"


@pytest.mark.parametrize("sdk_path", [False, True], ids=["fast-path", "sdk-path"])
def test_fields_outside_the_schema_are_dropped_with_one_warning_each(
    caplog: pytest.LogCaptureFixture, sdk_path: bool
) -> None:
    caplog.set_level(logging.WARNING)
    extra = {"flattening_enabled": True, "flattening_max_depth": 1} if sdk_path else {}
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=4)
        for app in api.lists["/v1/app"]:
            app.update(throttleRate=5, eventTypes=["a"])
        for i in range(3):
            for endpoint in api.lists[f"/v1/app/app_{i:06d}/endpoint"]:
                endpoint["throttleRate"] = 7
        out = run_tap(config(page_size=2, max_concurrency=4, **extra))
    assert len(out.records("applications")) == 3 and len(out.records("endpoints")) == 12
    for stream in ("applications", "endpoints"):
        for record in out.records(stream):
            assert "throttleRate" not in record and "eventTypes" not in record
    warned = sorted(
        (log.args[0], log.args[1])
        for log in caplog.records
        if _UNKNOWN in str(log.msg) and isinstance(log.args, tuple)
    )
    assert warned == [
        ("applications", "eventTypes"),
        ("applications", "throttleRate"),
        ("endpoints", "throttleRate"),
    ]
    # nothing else (the SDK's own per-record notice) mentions them
    others = [m for m in caplog.messages if "throttleRate" in m and _UNKNOWN not in m]
    assert others == []


class _CountingServer:
    """A real HTTP server (requests_mock serialises requests) that counts requests in flight.

    It answers pages like `MockAPI`, from the lists a `MockAPI` was filled with.
    """

    def __init__(self, lists: dict[str, list[dict[str, Any]]], limit: int) -> None:
        self.lists, self.limit = lists, limit
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.reached = threading.Event()
        self.exceeded = threading.Event()
        self.grace = 0.3
        self.hold = 0.05
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(server.answer(self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, url: str) -> dict[str, Any]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            if self.now >= self.limit:
                self.reached.set()
            if self.now > self.limit:
                self.exceeded.set()
        try:
            # Until `limit` requests are in flight together, each is held a moment: the proof
            # that the tap reaches its bound.
            self.reached.wait(timeout=self.hold)
            if self.reached.is_set():
                # That first wave then stays in flight a moment longer, or until one request
                # too many arrives: the threads fetching ahead start together, so a tap that
                # ignored the bound would show it here. A tap within its bound passes whatever
                # the timing.
                self.exceeded.wait(timeout=self.grace)
                self.grace = 0.0
            return self._page(url)
        finally:
            with self.lock:
                self.now -= 1

    def _page(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        key = "uuid" if parts.path == "/v1/event-type" else "id"
        records = self.lists[parts.path]
        start = 0
        if "iterator" in query:
            start = [r[key] for r in records].index(query["iterator"][0]) + 1
        limit = int(query["limit"][0])
        page = records[start : start + limit]
        done = start + limit >= len(records)
        return {"data": page, "iterator": page[-1][key] if page else None, "done": done}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_max_concurrency_bounds_every_request_in_flight(limit: int) -> None:
    """The main thread and the threads fetching child lists ahead share the bound."""
    with mock_api() as api:  # only to build the lists
        serve_everything(api, apps=6, per_app=5, sources=3)
    server = _CountingServer(api.lists, limit)
    try:
        out = run_tap(config(base_url=server.url, page_size=2, max_concurrency=limit))
    finally:
        server.close()
    assert server.reached.is_set(), f"never {limit} requests in flight at once"
    assert server.most == limit, f"{server.most} requests in flight, max_concurrency={limit}"
    assert len(out.records("endpoints")) == 30 and len(out.records("ingest_source")) == 3
