"""A small scripted HTTP server on 127.0.0.1: the one helper for tests that need scripted,
single-case answers (for a whole dataset, faults or stats use the `fake_api` fixtures).

Each path gets either a script (replies served in order, the last one repeated) or a function of
the request; every request is recorded (path, query, headers) so a test can count attempts and
see what was sent. Unknown paths answer 404 with the API's error shape.

    with ScriptedServer() as api:
        api.script("/v1/app", Reply(503), page([{"id": "a"}], "a", done=True))
        api.pages("/v1/event-type", records, key="uuid", page_size=2)
        ...
        assert len(api.requests_to("/v1/app")) == 2
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer. `body` may be bytes, text, or anything JSON-encodable."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    cut_after: int | None = None
    """Announce the whole body's length but send only this many bytes, then close the
    connection (a body truncated in transit)."""
    drop: bool = False
    """Close the connection without sending a byte (a connection reset before the answer)."""
    stall: bool = False
    """Send nothing until the server closes: the client's read timeout fires first."""

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/json"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/html; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json"


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)  # lower-cased names; holds the key: not shown


Handler = Callable[[Request], Reply]


def page(data: Sequence[Mapping[str, Any]], iterator: str | None, *, done: bool) -> Reply:
    """A list page in the API's envelope."""
    return Reply(
        200, {"data": list(data), "iterator": iterator, "prevIterator": None, "done": done}
    )


def error(status: int, code: str = "error", detail: Any = "failed", **headers: str) -> Reply:
    """An error answer in the API's shape (`detail` is a list for 422)."""
    return Reply(status, {"code": code, "detail": detail}, headers)


EMPTY = page([], None, done=True)


def paged(records: Sequence[Mapping[str, Any]], key: str = "id") -> Handler:
    """Serve `records` in cursor pages like the API: `limit` per page, `iterator` = last key
    even on the last page (only `done` ends), an unknown cursor answers 400."""

    def handle(request: Request) -> Reply:
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 250:
            return error(422, "validation", [{"loc": ["query", "limit"], "msg": "bad limit"}])
        start = 0
        cursor = request.query.get("iterator")
        if cursor is not None:
            keys = [str(r[key]) for r in records]
            if cursor not in keys:
                return error(400, "bad_iterator", "unknown iterator")
            start = keys.index(cursor) + 1
        chunk = [dict(r) for r in records[start : start + limit]]
        last = str(chunk[-1][key]) if chunk else None
        return page(chunk, last, done=start + limit >= len(records))

    return handle


def failing_first(
    handler: Handler, failures: Sequence[Reply], when: Callable[[Request], bool] = lambda r: True
) -> Handler:
    """`handler`, except that the first requests for which `when` holds get `failures`, in order."""
    remaining = list(failures)
    lock = threading.Lock()

    def handle(request: Request) -> Reply:
        if when(request):
            with lock:
                failure = remaining.pop(0) if remaining else None
            if failure is not None:
                return failure
        return handler(request)

    return handle


def at_most(handler: Handler, requests: int) -> Handler:
    """`handler` for the first `requests` requests, then 400: a client that loops ends in an
    error after a few requests instead of hanging the test."""
    count = 0
    lock = threading.Lock()

    def handle(request: Request) -> Reply:
        nonlocal count
        with lock:
            count += 1
            over = count > requests
        if over:
            return error(400, "test_limit", "the scripted server stops a looping client")
        return handler(request)

    return handle


def sequence(*replies: Reply) -> Handler:
    """Replies in order, the last one repeated."""
    queue = list(replies)
    lock = threading.Lock()

    def handle(request: Request) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return handle


class ScriptedServer:
    """A thread-based HTTP server with scripted replies per path; records every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._closing = threading.Event()
        self.requests: list[Request] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(parts.path, query, headers)
                reply = server._answer(request)
                if reply.stall:
                    server._closing.wait()
                if reply.drop or reply.stall:
                    self.close_connection = True
                    return
                body, content_type = reply.encoded()
                self.send_response(reply.status)
                names = {k.lower() for k in reply.headers}
                if "content-type" not in names:
                    self.send_header("Content-Type", content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if reply.cut_after is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    body = body[: reply.cut_after]
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: tests read the request log, not stderr."""

        self._httpd = ThreadingHTTPServer((HOST, 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------

    def script(self, path: str, *replies: Reply | Handler) -> None:
        """Answer `path` with `replies` in order; the last one keeps answering afterwards.

        A reply may be a function of the request (e.g. `paged(...)`)."""
        if not replies:
            raise ValueError("at least one reply")
        queue = list(replies)

        def handle(request: Request) -> Reply:
            with self._lock:
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
            return reply(request) if callable(reply) else reply

        self._routes[path] = handle

    def route(self, path: str, handler: Handler) -> None:
        """Answer `path` with a function of the request."""
        self._routes[path] = handler

    def pages(self, path: str, records: Sequence[Mapping[str, Any]], key: str = "id") -> None:
        """Serve `records` at `path` with the API's cursor paging."""
        self._routes[path] = paged(records, key)

    def empty(self, *paths: str) -> None:
        for path in paths:
            self._routes[path] = lambda request: EMPTY

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            handler = self._routes.get(request.path)
        if handler is None:
            return error(404, "not_found", f"no route {request.path}")
        return handler(request)

    # -- reading the log ----------------------------------------------------------------

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # ends every stalled answer
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
