"""The HTTP server of the fake analytics API.

A small hand-written HTTP/1.1 server on :class:`socketserver.ThreadingTCPServer` (one daemon
thread per connection, keep-alive, ``Content-Length`` always set). It does not use
``http.server.BaseHTTPRequestHandler``: that one parses headers with ``email.parser`` and costs
about twice as much per request (see docs/fake_api.md). Page responses are rendered once per
data version and kept as complete HTTP response bytes.

Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import struct
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec

from analytics_api.streams import STREAMS, STREAMS_BY_NAME, StreamDefinition

from .data import Dataset, DatasetConfig, sort_key
from .faults import FaultConfig, FaultInjector, FaultRule

HOST = "127.0.0.1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_JSON = b"application/json"


def http_response(
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response (status line, headers, body)."""
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode(),
        b"Content-Type: " + content_type,
        b"Content-Length: " + str(len(body)).encode(),
    ]
    head.extend(f"{k}: {v}".encode("latin-1") for k, v in extra)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def error_body(code: str, detail: str) -> bytes:
    return _encode({"code": code, "detail": detail})


def validation_body(loc: list[str], msg: str, type_: str) -> bytes:
    return _encode({"detail": [{"loc": loc, "msg": msg, "type": type_}]})


@dataclass
class Entry:
    """A cacheable answer for one request target."""

    status: int
    response: bytes  # complete HTTP response
    template: str
    stream: str
    records: int = 0
    # Page details, for the bad-response faults:
    data: list[dict[str, Any]] | None = None
    iterator: str | None = None
    prev_iterator: str | None = None
    done: bool = True
    request_iterator: str | None = None

    @property
    def body(self) -> bytes:
        return self.response.partition(b"\r\n\r\n")[2]


@dataclass
class _View:
    records: list[dict[str, Any]]
    keys: list[str]
    known: frozenset[str] = field(default_factory=frozenset)


class Stats:
    """Request counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.total = 0
            self.records = 0
            self.by_template: Counter[str] = Counter()
            self.by_path: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.by_template_status: dict[str, Counter[str]] = {}
            self.faults: Counter[str] = Counter()
            self.control = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.started = time.time()

    def enter(self) -> None:
        """A request started being handled (for `max_in_flight`)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def record(
        self, path: str, template: str, status: int, fault: str | None, records: int
    ) -> None:
        st = str(status)
        with self._lock:
            self.total += 1
            self.records += records
            self.by_template[template] += 1
            self.by_path[path] += 1
            self.by_status[st] += 1
            per = self.by_template_status.get(template)
            if per is None:
                per = self.by_template_status[template] = Counter()
            per[st] += 1
            if fault:
                self.faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "records": self.records,
                "by_template": dict(self.by_template),
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "by_template_status": {k: dict(v) for k, v in self.by_template_status.items()},
                "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "control_requests": self.control,
                "max_in_flight": self.max_in_flight,
                "seconds": round(time.time() - self.started, 3),
            }


def _compile_routes() -> tuple[
    dict[str, StreamDefinition], list[tuple[re.Pattern[str], StreamDefinition]]
]:
    top: dict[str, StreamDefinition] = {}
    child: list[tuple[re.Pattern[str], StreamDefinition]] = []
    for s in STREAMS:
        if s.is_child:
            before, _, rest = s.path.partition("{")
            _, _, after = rest.partition("}")
            child.append(
                (re.compile("^" + re.escape(before) + "([^/]+)" + re.escape(after) + "$"), s)
            )
        else:
            top[s.path] = s
    return top, child


_TOP_ROUTES, _CHILD_ROUTES = _compile_routes()
_UNKNOWN = "<unknown>"


class FakeServer:
    """Data + faults + stats + the TCP server. Use :class:`fake_api.FakeAPI` in tests."""

    def __init__(
        self,
        dataset: DatasetConfig | None = None,
        token: str = "test-token",
        forbidden_token: str | None = "forbidden-token",
        faults: FaultConfig | None = None,
        latency_ms: float = 0,
        port: int = 0,
    ) -> None:
        self.config = dataset or DatasetConfig()
        self.data = Dataset(self.config)
        self.token = token
        self.forbidden_token = forbidden_token
        self._auth_ok = f"Bearer {token}".encode()
        self._auth_forbidden = f"Bearer {forbidden_token}".encode() if forbidden_token else None
        self.faults = FaultInjector(faults)
        self.latency_ms = latency_ms
        self.stats = Stats()
        self._lock = threading.RLock()
        self._raw_cache: dict[bytes, Entry] = {}
        self._page_cache: dict[tuple[Any, ...], Entry] = {}
        self._views: dict[tuple[str, str | None, bool], _View] = {}
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._tcp = _TCPServer((HOST, port), _Handler)
        self._tcp.app = self
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._tcp.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def serve_forever(self) -> None:
        self._tcp.serve_forever(poll_interval=0.05)

    def start_background(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"fake-api:{self.port}", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, close open keep-alive connections, release the port."""
        if self._thread is not None:
            stopper = threading.Thread(target=self._tcp.shutdown, daemon=True)
            stopper.start()
            deadline = time.monotonic() + 5
            while stopper.is_alive() and time.monotonic() < deadline:
                # Wake the accept loop at once instead of waiting for its poll interval.
                with contextlib.suppress(OSError):
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                stopper.join(0.01)
            self._thread.join(5)
            self._thread = None
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._tcp.server_close()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # ---- state changes (all invalidate the rendered pages) --------------------------------

    def _invalidate(self) -> None:
        self._raw_cache = {}
        self._page_cache = {}
        self._views = {}

    def mutate(
        self, share: float = 0.1, seed: int = 0, *, keep_updated_at: bool = False
    ) -> dict[str, list[str]]:
        with self._lock:
            result = self.data.mutate(share, seed, keep_updated_at=keep_updated_at)
            self._invalidate()
            return result

    def delete_records(self, share: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
        with self._lock:
            result = self.data.delete_records(share, seed)
            self._invalidate()
            return result

    def delete_parents(self, stream: str, ids: list[str]) -> None:
        with self._lock:
            self.data.delete_parents(stream, list(ids))
            self._invalidate()

    def reset_data(self) -> None:
        with self._lock:
            self.data = Dataset(self.config)
            self._invalidate()

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.faults.configure(faults or FaultConfig())

    def dump(self, stream: str) -> list[dict[str, Any]]:
        with self._lock:
            return self.data.dump(stream)

    def prerender(self, limit: int = MAX_LIMIT) -> int:
        """Render every page of every list for ``limit`` (ascending, as the tap asks). Returns
        the number of pages rendered."""
        pages = 0
        with self._lock:
            for s in STREAMS:
                archived = s.name == "event_types"
                parents: list[str | None] = [None]
                if s.is_child:
                    assert s.parent is not None
                    parents = [
                        r["id"]
                        for r in self.data.top[s.parent]
                        if not self.data.is_deleted(s.parent, r["id"])
                    ]
                for pid in parents:
                    it: str | None = None
                    while True:
                        entry = self._page(s, pid, limit, it, "ascending", archived)
                        pages += 1
                        if entry.done:
                            break
                        it = entry.iterator
        return pages

    # ---- request handling -----------------------------------------------------------------

    def respond(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[bytes, str | None]:
        """Answer one request: (response bytes, action) with action None, "close" or "reset"."""
        if target.startswith(b"/_fake/"):
            with self.stats._lock:
                self.stats.control += 1
            return self._control(method, target, body), None
        self.stats.enter()
        try:
            return self._respond_api(method, target, headers)
        finally:
            self.stats.leave()

    def _respond_api(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes]
    ) -> tuple[bytes, str | None]:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        path = target.partition(b"?")[0].decode("latin-1")
        auth = headers.get(b"authorization")
        if auth != self._auth_ok:
            template = self._template_of(path)
            if auth is not None and auth == self._auth_forbidden:
                status, body_ = 403, error_body("permission_denied", "Permission denied")
            else:
                status = 401
                body_ = error_body("authentication_failed", "Invalid or missing bearer token")
            self.stats.record(path, template, status, None, 0)
            return http_response(status, body_), None
        if method != b"GET":
            template = self._template_of(path)
            self.stats.record(path, template, 405, None, 0)
            return http_response(405, error_body("method_not_allowed", "Method not allowed")), None

        entry = self._raw_cache.get(target)
        if entry is None:
            entry = self._build_raw(target, path)

        decision = None
        if self.faults.active and entry.template != _UNKNOWN:
            decision = self.faults.decide(
                "GET " + target.decode("latin-1"), path, entry.template, entry.stream
            )
        if decision is None:
            self.stats.record(path, entry.template, entry.status, None, entry.records)
            return entry.response, None
        kind = decision.kind
        status, response, action = self._apply_fault(kind, decision.retry_after, entry)
        if kind == "slow":
            time.sleep(decision.slow_seconds)
        self.stats.record(
            path, entry.template, status, kind, 0 if kind != "slow" else entry.records
        )
        return response, action

    def _template_of(self, path: str) -> str:
        if path in _TOP_ROUTES:
            return path
        for rx, s in _CHILD_ROUTES:
            if rx.match(path):
                return s.path
        return _UNKNOWN

    def _build_raw(self, target: bytes, path: str) -> Entry:
        with self._lock:
            cache = self._raw_cache
            entry = cache.get(target)
            if entry is None:
                entry = self._build(target, path)
                cache[target] = entry
            return entry

    def _build(self, target: bytes, path: str) -> Entry:
        sdef = _TOP_ROUTES.get(path)
        parent_ident: str | None = None
        if sdef is None:
            for rx, s in _CHILD_ROUTES:
                m = rx.match(path)
                if m:
                    sdef, parent_ident = s, unquote(m.group(1))
                    break
        if sdef is None:
            return _error_entry(404, "not_found", f"No such path: {path}", _UNKNOWN, "")
        query = target.partition(b"?")[2].decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        tpl, name = sdef.path, sdef.name

        raw_limit = params.get("limit")
        if raw_limit is None:
            limit = DEFAULT_LIMIT
        else:
            try:
                limit = int(raw_limit)
            except ValueError:
                return _invalid_entry(
                    ["query", "limit"],
                    "value is not a valid integer",
                    "type_error.integer",
                    tpl,
                    name,
                )
            if limit < 1:
                return _invalid_entry(
                    ["query", "limit"],
                    "ensure this value is greater than or equal to 1",
                    "value_error.number.not_ge",
                    tpl,
                    name,
                )
            if limit > MAX_LIMIT:
                return _invalid_entry(
                    ["query", "limit"],
                    f"ensure this value is less than or equal to {MAX_LIMIT}",
                    "value_error.number.not_le",
                    tpl,
                    name,
                )
        order = params.get("order", "ascending")
        if order not in ("ascending", "descending"):
            return _invalid_entry(
                ["query", "order"],
                "value is not a valid enumeration member; permitted: 'ascending', 'descending'",
                "type_error.enum",
                tpl,
                name,
            )
        archived = False
        if name == "event_types" and "include_archived" in params:
            flag = params["include_archived"].lower()
            if flag not in ("true", "false", "1", "0"):
                return _invalid_entry(
                    ["query", "include_archived"],
                    "value could not be parsed to a boolean",
                    "type_error.bool",
                    tpl,
                    name,
                )
            archived = flag in ("true", "1")

        parent_id: str | None = None
        if sdef.is_child:
            assert sdef.parent is not None and parent_ident is not None
            parent = self.data.find_parent(sdef.parent, parent_ident)
            if parent is None or self.data.is_deleted(sdef.parent, parent["id"]):
                return _error_entry(
                    404, "not_found", f"{sdef.parent} {parent_ident} not found", tpl, name
                )
            parent_id = parent["id"]
        return self._page(sdef, parent_id, limit, params.get("iterator") or None, order, archived)

    def _view(self, sdef: StreamDefinition, parent_id: str | None, archived: bool) -> _View:
        key = (sdef.name, parent_id, archived)
        view = self._views.get(key)
        if view is None:
            if parent_id is None:
                full = self.data.top[sdef.name]
            else:
                full = self.data.children[sdef.name].get(parent_id, [])
            # A deleted record's key stays a valid iterator: a client paging through the list
            # while records are deleted goes on after that position, as the API's ids allow.
            known = frozenset(sort_key(sdef.name, r) for r in full) | self.data.removed[sdef.name]
            recs = (
                full
                if archived or sdef.name != "event_types"
                else [r for r in full if not r.get("archived")]
            )
            view = _View(recs, [sort_key(sdef.name, r) for r in recs], known)
            self._views[key] = view
        return view

    def _page(
        self,
        sdef: StreamDefinition,
        parent_id: str | None,
        limit: int,
        iterator: str | None,
        order: str,
        archived: bool,
    ) -> Entry:
        ckey = (sdef.name, parent_id, limit, iterator, order, archived)
        entry = self._page_cache.get(ckey)
        if entry is not None:
            return entry
        view = self._view(sdef, parent_id, archived)
        recs, keys, n = view.records, view.keys, len(view.keys)
        backwards = iterator is not None and iterator.startswith("-")
        it = iterator[1:] if iterator and backwards else iterator
        if it is not None and it not in view.known:
            return _error_entry(
                400,
                "invalid_iterator",
                "The iterator is not valid for this list",
                sdef.path,
                sdef.name,
            )
        asc = order == "ascending"
        # ``lo:hi`` is the slice of the ascending list this page shows.
        if it is None:
            lo, hi = (0, min(limit, n)) if asc else (max(0, n - limit), n)
            more = hi < n if asc else lo > 0
        elif asc != backwards:  # moving up the ascending list
            lo = bisect_right(keys, it)
            hi = min(n, lo + limit)
            more = hi < n
        else:  # moving down
            hi = bisect_left(keys, it)
            lo = max(0, hi - limit)
            more = lo > 0
        page = recs[lo:hi]
        if not asc:
            page = page[::-1]
        done = not more
        nxt = sort_key(sdef.name, page[-1]) if page else None
        prev = ("-" + sort_key(sdef.name, page[0])) if (page and iterator is not None) else None
        body = _encode({"data": page, "iterator": nxt, "prevIterator": prev, "done": done})
        entry = Entry(
            status=200,
            response=http_response(200, body),
            template=sdef.path,
            stream=sdef.name,
            records=len(page),
            data=page,
            iterator=nxt,
            prev_iterator=prev,
            done=done,
            request_iterator=iterator,
        )
        self._page_cache[ckey] = entry
        return entry

    # ---- faults ---------------------------------------------------------------------------

    def _apply_fault(
        self, kind: str, retry_after: str, entry: Entry
    ) -> tuple[int, bytes, str | None]:
        if kind == "429":
            body = error_body("rate_limit_exceeded", "Too many requests")
            return 429, http_response(429, body, extra=(("Retry-After", retry_after),)), None
        if kind == "429-date":
            when = formatdate(time.time() + float(retry_after), usegmt=True)
            body = error_body("rate_limit_exceeded", "Too many requests")
            return 429, http_response(429, body, extra=(("Retry-After", when),)), None
        if kind == "429-no-retry-after":
            return (
                429,
                http_response(429, error_body("rate_limit_exceeded", "Too many requests")),
                None,
            )
        if kind in ("500", "502", "503", "504"):
            status = int(kind)
            code = HTTPStatus(status).phrase.lower().replace(" ", "_")
            return status, http_response(status, error_body(code, "Injected fault")), None
        if kind == "reset":
            head, _, body = entry.response.partition(b"\r\n\r\n")
            return entry.status, head + b"\r\n\r\n" + body[: max(1, len(body) // 2)], "reset"
        if kind == "truncated":
            cut = entry.body[: max(1, len(entry.body) // 2)]
            return entry.status, http_response(entry.status, cut), None
        if kind == "slow":
            return entry.status, entry.response, None
        if kind in ("html-200", "html-502"):
            status = 200 if kind == "html-200" else 502
            html = (
                b"<!DOCTYPE html><html><head><title>Error</title></head><body>"
                b"<h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
            )
            return status, http_response(status, html, b"text/html; charset=utf-8"), None
        # Envelope faults need a page; on an error entry serve it unchanged.
        if entry.data is None:
            return entry.status, entry.response, None
        env: dict[str, Any] = {
            "data": entry.data,
            "iterator": entry.iterator,
            "prevIterator": entry.prev_iterator,
            "done": entry.done,
        }
        if kind == "no-data":
            del env["data"]
        elif kind == "data-not-list":
            env["data"] = {"items": entry.data}
        elif kind == "missing-pk":
            pk = STREAMS_BY_NAME[entry.stream].primary_key
            first = dict(entry.data[0]) if entry.data else {"name": "a record without its key"}
            first.pop(pk, None)
            env["data"] = [first, *entry.data[1:]]
        elif kind == "repeated-cursor":
            env["iterator"] = entry.request_iterator or entry.iterator
            env["done"] = False
        elif kind == "missing-done":
            del env["done"]
        elif kind == "null-iterator-not-done":
            env["iterator"] = None
            env["done"] = False
        return 200, http_response(200, _encode(env)), None

    # ---- control endpoints ----------------------------------------------------------------

    def _control(self, method: bytes, target: bytes, body: bytes) -> bytes:
        path = target.partition(b"?")[0].decode("latin-1")
        m = method.decode("latin-1")
        try:
            payload: Any = _decode(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the request body must be a JSON object")
            result = self._control_dispatch(m, path, payload)
        except (KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
            return http_response(400, error_body("bad_request", str(exc)))
        if result is None:
            return http_response(404, error_body("not_found", f"No control endpoint {m} {path}"))
        if isinstance(result, bytes):
            return http_response(200, result, b"application/x-ndjson")
        return http_response(200, _encode(result))

    def _control_dispatch(self, m: str, path: str, p: dict[str, Any]) -> Any:
        if path == "/_fake/health":
            return {"ok": True, "url": self.url}
        if path == "/_fake/info" and m == "GET":
            return self.info()
        if path == "/_fake/stats" and m == "GET":
            return self.stats.snapshot()
        if path in ("/_fake/stats/reset", "/_fake/reset") and m == "POST":
            if p.get("stats", True):
                self.stats.reset()
            if p.get("faults", False):
                self.set_faults(None)
            if p.get("data", False):
                self.reset_data()
            return {"ok": True}
        if path == "/_fake/dump" and m == "GET":
            with self._lock:
                return self.data.counts()
        if path.startswith("/_fake/dump/") and m == "GET":
            stream = unquote(path[len("/_fake/dump/") :])
            if stream not in STREAMS_BY_NAME:
                raise KeyError(f"unknown stream {stream!r}")
            return b"".join(_encode(r) + b"\n" for r in self.dump(stream))
        if path == "/_fake/mutate" and m == "POST":
            return self.mutate(
                float(p.get("share", 0.1)),
                int(p.get("seed", 0)),
                keep_updated_at=bool(p.get("keep_updated_at", False)),
            )
        if path == "/_fake/faults":
            if m == "GET":
                return self.faults.config.to_dict()
            if m in ("POST", "PUT"):
                self.set_faults(FaultConfig.from_dict(p))
                return self.faults.config.to_dict()
            if m == "DELETE":
                self.set_faults(None)
                return self.faults.config.to_dict()
        if path == "/_fake/faults/rules" and m == "POST":
            self.set_faults(self.faults.config.with_rules(FaultRule(**p)))
            return self.faults.config.to_dict()
        if path == "/_fake/latency" and m == "POST":
            self.latency_ms = float(p.get("ms", 0))
            return {"latency_ms": self.latency_ms}
        if path == "/_fake/delete" and m == "POST":
            return self.delete_records(float(p.get("share", 0.1)), int(p.get("seed", 0)))
        if path == "/_fake/delete-parent" and m == "POST":
            self.delete_parents(str(p["stream"]), list(p["ids"]))
            return {"deleted": {k: sorted(v) for k, v in self.data.deleted.items()}}
        if path == "/_fake/prerender" and m == "POST":
            return {"pages": self.prerender(int(p.get("limit", MAX_LIMIT)))}
        return None

    def info(self) -> dict[str, Any]:
        with self._lock:
            counts = self.data.counts()
        return {
            "url": self.url,
            "token": self.token,
            "forbidden_token": self.forbidden_token,
            "dataset": self.config.to_dict(),
            "faults": self.faults.config.to_dict(),
            "latency_ms": self.latency_ms,
            "counts": counts,
            "mutations": self.data.mutations,
            "deletions": self.data.deletions,
        }


def _error_entry(status: int, code: str, detail: str, template: str, stream: str) -> Entry:
    body = error_body(code, detail)
    return Entry(status, http_response(status, body), template, stream)


def _invalid_entry(loc: list[str], msg: str, type_: str, template: str, stream: str) -> Entry:
    body = validation_body(loc, msg, type_)
    return Entry(422, http_response(422, body), template, stream)


# --------------------------------------------------------------------------------------------
# TCP plumbing


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: FakeServer


_MAX_LINE = 65536
_RST = struct.pack("ii", 1, 0)


class _Handler(socketserver.StreamRequestHandler):
    """Keep-alive HTTP/1.1 loop: parse request line and headers by hand, write whole responses."""

    rbufsize = 65536
    wbufsize = 0
    disable_nagle_algorithm = True
    server: _TCPServer

    def handle(self) -> None:
        app = self.server.app
        conn = self.connection
        app._track(conn, True)
        try:
            self._loop(app, conn)
        except OSError:
            pass
        finally:
            app._track(conn, False)

    def _loop(self, app: FakeServer, conn: socket.socket) -> None:
        rfile = self.rfile
        while True:
            line = rfile.readline(_MAX_LINE)
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            parts = line.split()
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
                conn.sendall(http_response(400, error_body("bad_request", "Bad request line")))
                return
            method, target, version = parts
            headers: dict[bytes, bytes] = {}
            while True:
                h = rfile.readline(_MAX_LINE)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.partition(b":")
                headers[k.strip().lower()] = v.strip()
            length = headers.get(b"content-length")
            body = rfile.read(int(length)) if length else b""
            conn_hdr = headers.get(b"connection", b"").lower()
            keep = conn_hdr != b"close" if version == b"HTTP/1.1" else conn_hdr == b"keep-alive"
            response, action = app.respond(method, target, headers, body)
            if action == "reset":
                conn.sendall(response)
                time.sleep(0.05)  # let the client read the headers and start on the body
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
                conn.close()  # RST: the client sees a reset mid-body
                return
            conn.sendall(response)
            if not keep or action == "close":
                return
