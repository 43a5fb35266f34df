"""A paginating analytics API on requests-mock, plus a way to run the tap in-process.

Pages follow upstream: `iterator` is the last item's id even on the last page, `done` ends.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests_mock

from analytics_api.streams import STREAMS_BY_NAME
from tap_analytics.tap import TapAnalytics
from tests.support import TapRun, parse_tap_output

BASE_URL = "https://api.example.com"
API_KEY = "sk_test_SECRET_4f2a9c"


def config(**overrides: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "base_url": BASE_URL, "max_concurrency": 1, **overrides}


def make_records(
    prefix: str,
    count: int,
    *,
    key: str = "id",
    rk: str = "updatedAt",
    start: int = 0,
    stream: str | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    """Records whose ids sort in creation order and whose timestamps vary in precision.

    With `stream`, every field of that stream's schema gets a value of its type.
    """
    fractions = ["", ".123", ".123456", ".123456789"]
    props = STREAMS_BY_NAME[stream].schema["properties"] if stream else {}
    parent_key = STREAMS_BY_NAME[stream].parent_key if stream else None
    out = []
    for i in range(start, start + count):
        ts = f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}{fractions[i % 4]}Z"
        record = {name: _value(name, spec, i) for name, spec in props.items() if name != parent_key}
        record.update({key: f"{prefix}_{i:06d}", "createdAt": "2023-12-01T00:00:00Z", rk: ts})
        record.update(extra)
        out.append(record)
    return out


def _value(name: str, spec: dict[str, Any], i: int) -> Any:
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if "integer" in kinds:
        return 70_000 + i  # beyond 16 bits
    if "boolean" in kinds:
        return i % 2 == 0
    if "object" in kinds:
        return {"team": f"t{i}", "tier": "gold"}
    if "array" in kinds:
        return [f"flag.{i}", "beta"]
    if spec.get("format") == "date-time":
        return "2023-12-01T00:00:00Z"
    return f"{name}-{i}"


class Pages:
    """A requests-mock JSON callback serving `records` in the API's cursor pages, by fake_api's
    rule: `limit` per page (default 50), `iterator` = the last item's key even on the last page,
    only `done` ends; an unknown iterator answers 400. `records` may be replaced between runs."""

    def __init__(self, records: list[dict[str, Any]], key: str = "id") -> None:
        self.records = records
        self.key = key

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        query = parse_qs(urlsplit(request.url).query)
        limit = int(query.get("limit", ["50"])[0])
        cursor = query.get("iterator", [None])[0]
        start = 0
        if cursor is not None:
            keys = [str(r[self.key]) for r in self.records]
            if cursor not in keys:
                context.status_code = 400
                return {"code": "invalid_iterator", "detail": "unknown iterator"}
            start = keys.index(cursor) + 1
        page = [dict(r) for r in self.records[start : start + limit]]
        return {
            "data": page,
            "iterator": str(page[-1][self.key]) if page else None,
            "prevIterator": None,
            "done": start + limit >= len(self.records),
        }


@dataclass
class MockAPI:
    """Serves lists of records per path; records what was requested."""

    mocker: requests_mock.Mocker
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def serve(self, path: str, records: list[dict[str, Any]], key: str = "id") -> None:
        self.lists[path] = records
        self.mocker.get(BASE_URL + path, json=self._callback(path, key))

    def _callback(self, path: str, key: str) -> Any:
        def respond(request: Any, context: Any) -> Any:
            return Pages(self.lists[path], key)(request, context)

        return respond

    def requests_to(self, path: str) -> list[dict[str, list[str]]]:
        """Query strings of the requests made to exactly this path, in order."""
        return [
            parse_qs(urlsplit(r.url).query)
            for r in self.mocker.request_history
            if urlsplit(r.url).path == path
        ]


@contextlib.contextmanager
def mock_api() -> Iterator[MockAPI]:
    with requests_mock.Mocker() as mocker:
        yield MockAPI(mocker)


def serve_everything(api: MockAPI, apps: int = 3, per_app: int = 4, sources: int = 2) -> None:
    """A small full dataset: every stream has data, children under every parent."""
    api.serve("/v1/app", make_records("app", apps, stream="applications"))
    api.serve("/v1/event-type", make_records("et", 5, key="uuid", stream="event_types"), key="uuid")
    api.serve(
        "/v1/management/authentication/api-token",
        make_records("key", 3, rk="createdAt", stream="tokens"),
    )
    api.serve("/v1/operational-webhook/endpoint", make_records("wh", 4, stream="webhook_endpoint"))
    api.serve("/ingest/api/v1/source", make_records("src", sources, stream="ingest_source"))
    for i in range(apps):
        app = f"app_{i:06d}"
        api.serve(f"/v1/app/{app}/endpoint", make_records(f"ep{i}", per_app, stream="endpoints"))
        api.serve(
            f"/v1/app/{app}/integration",
            make_records(f"integ{i}", per_app - 1, stream="integrations"),
        )
    for i in range(sources):
        api.serve(
            f"/ingest/api/v1/source/src_{i:06d}/endpoint",
            make_records(f"sep{i}", 2, stream="ingest_source_endpoint"),
        )


def run_tap(cfg: dict[str, Any], state: dict | None = None, catalog: dict | None = None) -> TapRun:
    """Run a full sync in-process; its stdout parsed like every other tap run's."""
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    tap = TapAnalytics(config=cfg, state=state, catalog=catalog, parse_env_config=False)
    old = sys.stdout
    sys.stdout = stdout
    try:
        tap.sync_all()
    finally:
        tap.message_writer.flush()  # type: ignore[attr-defined]
        stdout.flush()
        sys.stdout = old
    return parse_tap_output(buffer.getvalue().decode())


def serve_empty_other_lists(api: MockAPI) -> None:
    """Empty lists for every top-level stream but applications (tests about one parent)."""
    for definition in STREAMS_BY_NAME.values():
        if not definition.is_child and definition.name != "applications":
            api.serve(definition.path, [], key=definition.primary_key)


# -- helpers for the native source's tests (requests-mock on BASE_URL) -------------------------


def queries(mocker: requests_mock.Mocker, path: str) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(r.url).query)
        for r in mocker.request_history
        if urlsplit(r.url).path == path
    ]


def rec(ident: str, updated: str = "2024-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "createdAt": "2023-12-01T00:00:00Z", "updatedAt": updated, **extra}


def serve_apps_with_children(
    mocker: requests_mock.Mocker, apps: list[dict[str, Any]], per_app: int = 2
) -> dict[str, list[dict[str, Any]]]:
    mocker.get(BASE_URL + "/v1/app", json=Pages(apps))
    children: dict[str, list[dict[str, Any]]] = {}
    for n, app in enumerate(apps):
        children[app["id"]] = [
            rec(f"ep_{n}_{j}", f"2024-02-{10 - n:02d}T00:00:0{j}Z", url=f"https://h/{n}/{j}")
            for j in range(per_app)
        ]
        mocker.get(f"{BASE_URL}/v1/app/{app['id']}/endpoint", json=Pages(children[app["id"]]))
    return children
