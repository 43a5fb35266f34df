"""A native dlt source for the analytics API, generated from `analytics_api.streams.STREAMS`.

The same stream table drives both engines: the Singer tap (`tap_analytics`) and this source, built
on `dlt.sources.rest_api.rest_api_source`. Column types, keys and merge settings come from
`analytics_source.hints`, the module the Singer bridge uses, so both paths create identical tables.

What the generated `rest_api` configuration adds to the contract's example (which does not build
in dlt as written, see NOTES.md):

* paginator `analytics_done` (`DonePaginator`, registered with `register_paginator`): sends
  `limit` and `iterator=<cursor>`, stops on `done` (the last page's iterator is NOT null), and
  fails on a repeated cursor or on `done: false` without one;
* child paths resolve `{app_id}` / `{src_id}` from a hidden, unselected *scan* of the parent list
  (`applications_scan`, `ingest_source_scan`); the parent id is stored in the child rows as
  `app_id` / `src_id`, like the Singer tap does. The scan exists because dlt feeds a child from the
  *end* of its parent's pipe, after the parent's incremental filter: children of unchanged parents
  would never be visited. The scan re-reads the parent list once more (a few requests);
* a 404 on a child path (the parent was deleted after it was listed) is skipped;
* incremental on the replication key (`updatedAt`, `createdAt` for tokens) with
  `dlt.sources.incremental`, filtered client side (the API cannot filter or sort by it):
  `last_value_func=latest_timestamp` compares timestamps by time, whatever their 0-9 fractional
  digits, and the state holds the canonical form (`2024-01-31T10:00:00.120000000Z`);
* merge (`delete-insert`) on the primary key, `_sdc_sequence` with `dedup_sort: desc`, `json`
  columns and `max_table_nesting=0`, all from `analytics_source.hints`; each record checked with the
  bridge's `RecordValidator`, fields outside the schema dropped as the tap does (`_row_step`);
* the contract's retries: 429/500/502/503/504, connection errors, read timeouts and 2xx bodies
  that are not JSON; 3 retries (4 attempts) waiting 2, 4, 8 s, or `Retry-After` when sent. This is
  dlt's own retrying session (`dlt.sources.helpers.requests.Client`) configured with the
  contract's values, handed to `rest_api` as `client.session`;
* each response body is parsed once (msgspec), not once for the data and again for the cursor.
"""

from __future__ import annotations

# `dlt_bridge/__init__` (always imported before this module) switches dlt telemetry off by
# default before dlt is imported.
import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
import msgspec
import requests
from dlt.common import jsonpath
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.rest_api import rest_api_source
from dlt.sources.rest_api.config_setup import make_parent_key_name, register_paginator
from dlt.sources.rest_api.typing import RESTAPIConfig

from analytics_api.streams import STREAMS, STREAMS_BY_NAME, StreamDefinition
from analytics_api.timestamps import TimestampError, canonical
from analytics_api.validate import RecordValidator, SchemaViolation
from analytics_source.hints import (
    MAX_TABLE_NESTING,
    SEQUENCE_COLUMN,
    SequenceGenerator,
    table_hints,
)

__all__ = [
    "DEFAULT_DATASET_NAME",
    "DEFAULT_PIPELINE_NAME",
    "MAX_PAGE_SIZE",
    "PAGINATOR_NAME",
    "RETRY_STATUSES",
    "SOURCE_NAME",
    "AnalyticsPaginationError",
    "AnalyticsRecordError",
    "DonePaginator",
    "NativeRunSummary",
    "RetryPolicy",
    "add_native_subcommand",
    "analytics_rest_api_config",
    "analytics_source",
    "build_analytics_source",
    "latest_timestamp",
    "load_native",
    "make_session",
    "run_native",
    "scan_resource_name",
    "stream_incremental",
]

log = logging.getLogger("dlt_bridge")

SOURCE_NAME = "analytics"
"""dlt source (and schema) name; also the config section: `[sources.analytics]`."""
DEFAULT_PIPELINE_NAME = "analytics_native"
"""Default pipeline name, hence the default DuckDB file `analytics_native.duckdb`."""
DEFAULT_DATASET_NAME = "analytics"
"""Same default dataset as the Singer bridge."""
PAGINATOR_NAME = "analytics_done"
MAX_PAGE_SIZE = 250
"""The API answers 422 above this (it does not clamp)."""
RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)
"""The contract's retryable statuses; every other 4xx/5xx fails at once."""
API_KEY_ENV_FALLBACK = "TAP_ANALYTICS_API_KEY"
BASE_URL_ENV_FALLBACK = "TAP_ANALYTICS_BASE_URL"


class AnalyticsPaginationError(RuntimeError):
    """A list page without the `{data, iterator, done}` envelope, or a cursor that loops."""


class AnalyticsRecordError(ValueError):
    """A record without its primary key or replication key."""


class _BodyNotJSON(requests.exceptions.RequestException):
    """Internal marker: a 2xx body that did not parse (retried like a broken connection)."""


# -- pagination -------------------------------------------------------------------------------


class DonePaginator(BasePaginator):
    """Cursor paginator for `{data, iterator, prevIterator, done}` list pages.

    Sends `limit` on every request and `iterator=<cursor>` from the second page on. Stops when
    `done` is true: on the last page `iterator` is NOT null (it is the last item's id), so a
    paginator that waits for a null cursor would ask for one more page. Registered as
    `analytics_done`, so it can be named in a `rest_api` config:
    `{"type": "analytics_done", "limit": 250}`.
    """

    def __init__(
        self,
        limit: int | None = MAX_PAGE_SIZE,
        cursor_param: str = "iterator",
        limit_param: str = "limit",
        cursor_path: str = "iterator",
        done_path: str = "done",
        data_path: str = "data",
    ) -> None:
        super().__init__()
        if limit is not None and not 1 <= int(limit) <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE_SIZE} (the API answers 422)")
        self.limit = None if limit is None else int(limit)
        self.cursor_param = cursor_param
        self.limit_param = limit_param
        self.cursor_path = cursor_path
        self.done_path = done_path
        self.data_path = data_path
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._where = ""

    def init_request(self, request: requests.Request) -> None:
        # A paginator may be reused (rest_api deep-copies one per parent, but not per run).
        self._has_next_page = True
        self._cursor = None
        self._seen = set()
        self._where = _describe_request(request)
        params = request.params if isinstance(request.params, dict) else {}
        params.pop(self.cursor_param, None)
        if self.limit is not None:
            params[self.limit_param] = self.limit
        request.params = params

    def update_state(self, response: requests.Response, data: list[Any] | None = None) -> None:
        body = response.json()
        where = self._where or _describe_request(response.request)
        if not isinstance(body, dict):
            raise AnalyticsPaginationError(
                f"{where}: the response is JSON but not a list page (expected "
                "{data: [...], iterator, done}); check `base_url` points at the API root."
            )
        done = body.get(self.done_path)
        if not isinstance(done, bool) or not isinstance(body.get(self.data_path), list):
            raise AnalyticsPaginationError(
                f"{where}: the response is not a list page: `{self.data_path}` (array) and "
                f"`{self.done_path}` (boolean) are required, got keys {sorted(body)[:8]}; "
                "check `base_url` points at the API root."
            )
        if done:
            self._has_next_page = False
            self._cursor = None
            return
        cursor = body.get(self.cursor_path)
        if cursor is None:
            raise AnalyticsPaginationError(
                f"{where}: the API answered done=false without an iterator, so there is no way "
                "to ask for the next page. Stopping instead of guessing."
            )
        cursor = str(cursor)
        if cursor in self._seen:
            raise AnalyticsPaginationError(
                f"{where}: the API returned the iterator {cursor[:64]!r} a second time; "
                "following it would loop forever. Stopping."
            )
        self._seen.add(cursor)
        self._cursor = cursor

    def update_request(self, request: requests.Request) -> None:
        if self._cursor is not None:
            request.params[self.cursor_param] = self._cursor

    def __str__(self) -> str:
        return f"DonePaginator(limit={self.limit}, cursor={self._cursor!r})"


def _describe_request(request: Any) -> str:
    url = getattr(request, "url", "") or ""
    path = url.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return f"GET {path}"


register_paginator(PAGINATOR_NAME, DonePaginator)


# -- timestamps -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _canonical_str(value: str) -> str:
    return canonical(value)


def _canonical_ts(value: Any) -> str:
    """Canonical 9-digit UTC form; the canonical form itself (and raw 9-digit Z values) pass."""
    if type(value) is str:
        if len(value) == 30 and value[19] == "." and value[29] == "Z":
            return value
        return _canonical_str(value)  # dlt asks 2-3 times per row: parse once
    return canonical(value)


def latest_timestamp(values: Sequence[Any]) -> str:
    """`last_value_func` for RFC 3339 cursors: the latest by time, in canonical form.

    Raw strings compare wrongly across precisions (`...:00Z` > `...:00.5Z`); dlt's incremental
    compares through this function only, and equality checks see canonical strings on both sides.
    """
    if len(values) == 1:
        return _canonical_ts(values[0])
    return max(map(_canonical_ts, values))


# -- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """The contract's retry policy, in the terms of `dlt.sources.helpers.requests.Client`."""

    max_retries: int = 3
    """Retries after the first attempt (dlt's `request_max_attempts` = this + 1)."""
    backoff_factor: float = 2.0
    """Wait `backoff_factor * 2**(n-1)` seconds before retry n: 2, 4, 8 s."""
    max_delay: float = 300.0
    """Cap on one wait, `Retry-After` included."""
    timeout: float = 60.0
    """Seconds to connect / to wait for a response."""
    statuses: tuple[int, ...] = RETRY_STATUSES


_decode_json = msgspec.json.decode


def _parse_once(response: requests.Response | None, exception: BaseException | None) -> bool:
    """Retry predicate run after every attempt: parses a 2xx body once (msgspec).

    Returns True (retry) for a 2xx body that is not JSON (a truncated body, an HTML page from a
    proxy). Otherwise installs the parsed body as `response.json()`, so neither the data
    selector nor the paginator parses it again.
    """
    if exception is not None or response is None or not 200 <= response.status_code < 300:
        return False
    try:
        parsed = _decode_json(response.content)
    except msgspec.DecodeError as exc:
        where = _describe_request(response.request)
        start = " ".join(response.content[:120].decode("utf-8", "replace").split())
        message = (
            f"{where}: HTTP {response.status_code} with a body that is not JSON ({exc}); body "
            f"starts: {start!r}. Check `base_url` points at the API root."
        )
        log.warning("%s Retrying if retries are left.", message)

        def broken_json(**_: Any) -> Any:  # what rest_api meets when no retry is left
            raise AnalyticsPaginationError(message)

        response.json = broken_json  # type: ignore[method-assign]
        return True

    def cached_json(**_: Any) -> Any:
        return parsed

    response.json = cached_json  # type: ignore[method-assign]
    return False


def make_session(policy: RetryPolicy | None = None, user_agent: str | None = None) -> Any:
    """A `requests.Session` from dlt's retrying `Client`, set to the contract's retry policy.

    `rest_api` would otherwise build `Client(raise_for_status=False)` with dlt's runtime defaults
    (5 attempts, backoff factor 1, every 5xx; `RUNTIME__REQUEST_MAX_ATTEMPTS` etc.). The values
    here are explicit arguments, so `RUNTIME__REQUEST_*` does not change them: use the source's
    `max_retries` / `backoff_factor` / `request_timeout` instead.
    """
    policy = policy or RetryPolicy()
    client = Client(
        request_timeout=policy.timeout,
        raise_for_status=False,
        status_codes=policy.statuses,
        exceptions=(
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
        request_max_attempts=policy.max_retries + 1,
        retry_condition=_parse_once,
        request_backoff_factor=policy.backoff_factor,
        request_max_retry_delay=policy.max_delay,
        respect_retry_after_header=True,
    )
    session = client.session
    session.headers["Accept"] = "application/json"
    _settle_environment(session)
    if user_agent:
        session.headers["User-Agent"] = user_agent
    return session


def _settle_environment(session: requests.Session) -> None:
    """Read requests' environment settings once instead of on every request.

    A session with `trust_env` scans the environment for proxy settings on every request (about
    1 ms each). Without proxy variables, the CA bundle variables (`REQUESTS_CA_BUNDLE`,
    `CURL_CA_BUNDLE`) are applied to the session once and `trust_env` is switched off; with proxy
    variables the session is left as it is (requests must apply `no_proxy` per URL).
    """
    import urllib.request

    if urllib.request.getproxies():
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False


# -- configuration ----------------------------------------------------------------------------

DATA_SELECTOR = jsonpath.compile_path("data")


def scan_resource_name(parent: str) -> str:
    """Name of the hidden resource listing a parent stream for its children's `resolve`."""
    return f"{parent}_scan"


def _row_step(
    definition: StreamDefinition, sequence: SequenceGenerator
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Per-row map, in the order the Singer path applies the same rules.

    1. the parent id moves from dlt's `_<parent>_scan_<key>` to the bridge's column (`app_id`);
    2. the primary key and the replication key must be present (clear errors, no bad rows);
    3. the record is checked against the stream's JSON schema with the bridge's own
       `RecordValidator` (a wrong type fails the run instead of making a variant column);
    4. fields the schema does not declare are dropped, with one warning per field, as the tap's
       singer-sdk does, so both paths create the same columns;
    5. `_sdc_sequence` gets the next value of the bridge's `SequenceGenerator`.
    """
    name, pk, rk = definition.name, definition.primary_key, definition.replication_key
    schema = definition.schema
    validator = RecordValidator(schema, [pk])
    parent_column: str | None = None
    temporary: str | None = None
    if definition.parent is not None:
        parent_column = definition.parent_key
        parent_pk = STREAMS_BY_NAME[definition.parent].primary_key
        temporary = make_parent_key_name(scan_resource_name(definition.parent), parent_pk)
    known = validator.property_names
    warned: set[str] = set()

    def step(row: dict[str, Any]) -> dict[str, Any]:
        if temporary is not None:
            row[parent_column] = row.pop(temporary)  # type: ignore[index]
        if row.get(pk) is None:
            raise AnalyticsRecordError(
                f"stream '{name}': a record has no primary key '{pk}' (fields present: "
                f"{sorted(row)[:12]}). Refusing to load a row that cannot be merged."
            )
        if row.get(rk) is None:
            raise AnalyticsRecordError(
                f"stream '{name}': record {pk}={row[pk]!r} has no replication key '{rk}'; "
                "incremental loading cannot place it."
            )
        try:
            validator.validate(row)
        except SchemaViolation as exc:
            raise AnalyticsRecordError(
                f"stream '{name}': record {pk}={row[pk]!r}: {exc.reason}"
            ) from None
        if not row.keys() <= known:
            for field_name in [k for k in row if k not in known]:
                del row[field_name]
                if field_name not in warned:
                    warned.add(field_name)
                    log.warning(
                        "stream '%s': field %r is not in the stream's schema; dropped (as the"
                        " Singer tap does)",
                        name,
                        field_name,
                    )
        row[SEQUENCE_COLUMN] = sequence()
        return row

    return step


def analytics_rest_api_config(
    base_url: str,
    api_key: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    retry: RetryPolicy | None = None,
    session: Any = None,
    parallelized: bool = True,
    sequence: SequenceGenerator | None = None,
    streams: Iterable[StreamDefinition] = STREAMS,
) -> RESTAPIConfig:
    """The `rest_api` configuration of the analytics API, generated from the stream definitions.

    One resource per stream (named, and with a table named, after the stream), plus one hidden
    `<parent>_scan` resource per parent stream that feeds the children's `resolve`. Incremental
    loading is not part of it: `build_analytics_source` adds it to the built resources (see
    `stream_incremental` for why).
    """
    streams = tuple(streams)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE} (the API answers 422)")
    sequence = sequence or SequenceGenerator()
    by_name = {d.name: d for d in streams}
    resources: list[Any] = []
    for parent_name in sorted({d.parent for d in streams if d.parent}, key=_stream_order):
        parent = by_name.get(parent_name) or STREAMS_BY_NAME[parent_name]
        resources.append(
            {
                "name": scan_resource_name(parent.name),
                "selected": False,
                "endpoint": {"path": parent.path, "params": dict(parent.params)},
            }
        )
    for definition in streams:
        endpoint: dict[str, Any] = {"path": definition.path, "params": dict(definition.params)}
        resource: dict[str, Any] = {
            "name": definition.name,
            **table_hints(definition.name, definition.schema, [definition.primary_key]),
            "endpoint": endpoint,
            "processing_steps": [{"map": _row_step(definition, sequence)}],
        }
        if definition.parent is not None:
            parent = by_name.get(definition.parent) or STREAMS_BY_NAME[definition.parent]
            key = definition.parent_key
            assert key is not None
            endpoint["params"][key] = {
                "type": "resolve",
                "resource": scan_resource_name(parent.name),
                "field": parent.primary_key,
            }
            endpoint["response_actions"] = [{"status_code": 404, "action": "ignore"}]
            resource["include_from_parent"] = [parent.primary_key]
            resource["parallelized"] = parallelized
        resources.append(resource)

    client: dict[str, Any] = {
        "base_url": base_url.rstrip("/"),
        "auth": {"type": "bearer", "token": api_key},
        "session": session if session is not None else make_session(retry),
    }
    defaults: Any = {
        "endpoint": {
            # compiled once: a string selector is parsed by jsonpath-ng on every response
            "data_selector": DATA_SELECTOR,
            "paginator": {"type": PAGINATOR_NAME, "limit": page_size},
        },
    }
    return {"client": client, "resource_defaults": defaults, "resources": resources}  # type: ignore[typeddict-item]


def _stream_order(name: str) -> int:
    return [d.name for d in STREAMS].index(name) if name in STREAMS_BY_NAME else len(STREAMS)


def build_analytics_source(
    base_url: str,
    api_key: str,
    *,
    page_size: int = MAX_PAGE_SIZE,
    start_date: str | None = None,
    retry: RetryPolicy | None = None,
    parallelized: bool = True,
    session: Any = None,
) -> DltSource:
    """`rest_api_source` over the generated configuration (no dlt config lookup)."""
    if not api_key:
        raise ValueError(
            "the API key is empty: set `sources.analytics.api_key` (env "
            "SOURCES__ANALYTICS__API_KEY) or `api_key` in .dlt/secrets.toml"
        )
    initial_value = canonical(start_date) if start_date else None
    config = analytics_rest_api_config(
        base_url,
        api_key,
        page_size=page_size,
        retry=retry,
        session=session,
        parallelized=parallelized,
    )
    source = rest_api_source(
        config, name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=MAX_TABLE_NESTING
    )
    for definition in STREAMS:
        source.resources[definition.name].add_step(stream_incremental(definition, initial_value))
    return source


def stream_incremental(
    definition: StreamDefinition, initial_value: str | None = None
) -> dlt.sources.incremental[str]:
    """Client-side incremental filter on the stream's replication key, as a pipe step.

    Added with `resource.add_step` rather than through the `rest_api` config (`endpoint.
    incremental`): dlt binds a *transformer's* incremental argument again on every call, i.e. for
    every page of parent records, and each re-bind moves the start value to the newest value seen
    so far in the run. For an API that is not sorted by the cursor, child records of the next
    parents that are older than that would be dropped. A pipe step is bound once per run. The
    state is the usual one: `resources.<stream>.incremental.<cursor>` in the source state.
    """
    return dlt.sources.incremental(
        definition.replication_key,
        initial_value=initial_value,
        last_value_func=latest_timestamp,
        primary_key=definition.primary_key,
        on_cursor_value_missing="raise",
    )


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=MAX_TABLE_NESTING)
def analytics_source(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    page_size: int = MAX_PAGE_SIZE,
    start_date: str | None = None,
    max_retries: int = 3,
    backoff_factor: float = 2.0,
    request_timeout: float = 60.0,
    parallelized: bool = True,
) -> Any:
    """The analytics API as a dlt source: eight tables, merged on their keys, incremental.

    Settings come from arguments, else dlt config: `base_url` from `sources.analytics.base_url`
    (env `SOURCES__ANALYTICS__BASE_URL`) or the root `base_url`; `api_key` from
    `sources.analytics.api_key` (env `SOURCES__ANALYTICS__API_KEY`) or the root `api_key` in
    `.dlt/secrets.toml` (the contract's `dlt.secrets["api_key"]`).

    `parallelized` (default on) fetches each parent's child pages (endpoints, integrations,
    ingest source endpoints) in dlt's extract worker threads (`EXTRACT__WORKERS`, default 5);
    rows are processed (checks, `_sdc_sequence`, incremental) in the main thread either way.
    """
    return build_analytics_source(
        base_url,
        api_key,
        page_size=page_size,
        start_date=start_date,
        retry=RetryPolicy(
            max_retries=max_retries, backoff_factor=backoff_factor, timeout=request_timeout
        ),
        parallelized=parallelized,
    )


# -- running it ---------------------------------------------------------------------------------


@dataclass
class NativeRunSummary:
    """What one `load_native` run did."""

    records: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    destination: str = ""
    dataset_name: str = ""
    location: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        where = self.destination + (f" at {self.location}" if self.location else "")
        out = [
            f"loaded to {where}, dataset {self.dataset_name!r}, load id(s) "
            f"{', '.join(self.load_ids) or 'none'}"
        ]
        width = max((len(t) for t in self.rows_by_table), default=0)
        out.extend(
            f"  {table:<{width}}  {rows:>10,} rows"
            for table, rows in sorted(self.rows_by_table.items())
        )
        out.append(
            f"{self.records:,} records in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rec/s)"
        )
        return out


def load_native(
    pipeline: dlt.Pipeline,
    source: DltSource,
    *,
    loader_file_format: str = "parquet",
    on_pending: str = "load",
) -> NativeRunSummary:
    """Finish (or abort) packages a failed run left behind, sync state, then extract/normalize/load.

    The incremental state travels in the same load package as the data, so a failed run does not
    move it (see `dlt_bridge.pipeline.prepare`).
    """
    from dlt_bridge.pipeline import location_of, prepare

    started = time.monotonic()
    prepare(pipeline, "abort" if on_pending == "abort" else "load")
    info = pipeline.run(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]
    summary = NativeRunSummary(
        load_ids=list(info.loads_ids),
        destination=str(pipeline.destination.destination_name if pipeline.destination else ""),
        dataset_name=str(pipeline.dataset_name or ""),
        location=location_of(pipeline),
    )
    trace = pipeline.last_trace
    normalize_info = trace.last_normalize_info if trace is not None else None
    if normalize_info is not None:
        for table, count in normalize_info.row_counts.items():
            if not table.startswith("_dlt_"):
                summary.rows_by_table[table] = count
    summary.records = sum(summary.rows_by_table.values())
    summary.seconds = time.monotonic() - started
    return summary


def _lookup(keys: Sequence[str], *, secret: bool, env_fallback: str) -> str | None:
    provider = dlt.secrets if secret else dlt.config
    for key in keys:
        value: Any = provider.get(key)
        if value not in (None, ""):
            return str(value)
    return os.environ.get(env_fallback) or None


def add_native_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add `native` to the `dlt-bridge` subcommands (an `argparse` subparsers object)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "native",
        help="load the analytics API with the native dlt source (no Singer tap)",
        description="Load the analytics API straight into a dlt destination with dlt's rest_api"
        " source, generated from the same stream definitions as tap-analytics. The API key is"
        " read from dlt secrets: env SOURCES__ANALYTICS__API_KEY, `api_key` under"
        " [sources.analytics] or at the top of .dlt/secrets.toml (else env"
        f" {API_KEY_ENV_FALLBACK}). It is never a command-line flag.",
    )
    g = parser.add_argument_group("API")
    g.add_argument(
        "--base-url",
        help="API root, e.g. https://api.example.com (default: dlt config"
        f" sources.analytics.base_url / base_url, else env {BASE_URL_ENV_FALLBACK})",
    )
    g.add_argument(
        "--start-date",
        help="first run only: load records whose replication key is at or after this ISO 8601"
        " timestamp",
    )
    g.add_argument(
        "--page-size",
        type=int,
        default=MAX_PAGE_SIZE,
        help=f"records per request, 1..{MAX_PAGE_SIZE} (default: %(default)s)",
    )
    g.add_argument("--max-retries", type=int, default=3, help="default: %(default)s")
    g.add_argument("--backoff-factor", type=float, default=2.0, help="default: %(default)s")
    g.add_argument("--request-timeout", type=float, default=60.0, help="default: %(default)s")
    g.add_argument(
        "--parallel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fetch child pages in dlt's extract worker threads (default: on)",
    )
    g.add_argument(
        "--streams",
        help="comma-separated streams to load (default: all eight)",
    )
    g = parser.add_argument_group("destination (defaults come from dlt config, then these)")
    g.add_argument(
        "--destination",
        help="dlt destination name (default: dlt config `destination_type`, else duckdb)",
    )
    g.add_argument(
        "--dataset-name",
        help=f"dataset/schema to load into (default: dlt config, else {DEFAULT_DATASET_NAME})",
    )
    g.add_argument(
        "--pipeline-name",
        default=DEFAULT_PIPELINE_NAME,
        help="dlt pipeline name; also the default DuckDB file <name>.duckdb in the current"
        " directory (default: %(default)s)",
    )
    g.add_argument("--pipelines-dir", help="dlt working directory root (default: dlt's own)")
    g.add_argument(
        "--loader-file-format",
        choices=["parquet", "jsonl"],
        default="parquet",
        help="file format of the load packages (default: %(default)s)",
    )
    g.add_argument(
        "--on-pending",
        choices=["load", "abort"],
        default="load",
        help="what to do with load packages a failed run left behind (default: %(default)s)",
    )
    g.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default: %(default)s)",
    )
    parser.set_defaults(handler=run_native)
    return parser


def run_native(args: argparse.Namespace) -> int:
    """`dlt-bridge native`: exit 0 on success, 1 if the run failed, 2 for bad settings."""
    from dlt_bridge.pipeline import BridgeOptions, create_pipeline

    _ensure_logging(getattr(args, "log_level", "INFO"))
    base_url = args.base_url or _lookup(
        [f"sources.{SOURCE_NAME}.base_url", "base_url"],
        secret=False,
        env_fallback=BASE_URL_ENV_FALLBACK,
    )
    api_key = _lookup(
        [f"sources.{SOURCE_NAME}.api_key", "api_key"],
        secret=True,
        env_fallback=API_KEY_ENV_FALLBACK,
    )
    problems = []
    if not base_url:
        problems.append(
            "no base URL: pass --base-url or set sources.analytics.base_url (env"
            " SOURCES__ANALYTICS__BASE_URL)"
        )
    if not api_key:
        problems.append(
            "no API key: set env SOURCES__ANALYTICS__API_KEY, or api_key in .dlt/secrets.toml"
        )
    if not 1 <= args.page_size <= MAX_PAGE_SIZE:
        problems.append(f"--page-size must be within 1..{MAX_PAGE_SIZE}")
    if args.start_date:
        try:
            canonical(args.start_date)
        except TimestampError:
            problems.append("--start-date is not an ISO 8601 timestamp (e.g. 2024-01-31T00:00:00Z)")
    selected: list[str] = []
    if args.streams:
        selected = [s.strip() for s in args.streams.split(",") if s.strip()]
        unknown = [s for s in selected if s not in STREAMS_BY_NAME]
        if unknown:
            problems.append(
                f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAMS_BY_NAME)}"
            )
    if problems:
        for problem in problems:
            log.error("%s", problem)
        return 2
    assert base_url is not None and api_key is not None
    try:
        pipeline = create_pipeline(
            BridgeOptions(
                pipeline_name=args.pipeline_name,
                destination=args.destination,
                dataset_name=args.dataset_name,
                pipelines_dir=args.pipelines_dir,
                loader_file_format=args.loader_file_format,
            )
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    source = build_analytics_source(
        base_url,
        api_key,
        page_size=args.page_size,
        start_date=args.start_date,
        retry=RetryPolicy(
            max_retries=args.max_retries,
            backoff_factor=args.backoff_factor,
            timeout=args.request_timeout,
        ),
        parallelized=args.parallel,
    )
    if selected:
        source = source.with_resources(*selected)
    try:
        summary = load_native(
            pipeline,
            source,
            loader_file_format=args.loader_file_format,
            on_pending=args.on_pending,
        )
    except Exception as exc:
        log.error(
            "native load failed (the incremental state only moves with a completed load): %s%s",
            _short(exc, api_key),
            _hint(exc),
        )
        return 1
    for line in summary.lines():
        log.info("%s", line)
    return 0


_STATUS_HINTS = {
    401: "the API key is missing or wrong: check SOURCES__ANALYTICS__API_KEY (or api_key in"
    " .dlt/secrets.toml)",
    403: "the API key lacks permission for this resource: grant it or leave the stream out"
    " (--streams)",
    422: "the API rejected the request parameters (is --page-size within 1..250?)",
}


def _hint(exc: BaseException) -> str:
    """A hint for HTTP errors dlt wraps (it keeps the original as `__cause__`/`exception`)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        response = getattr(e, "response", None)
        if isinstance(e, requests.HTTPError) and response is not None:
            hint = _STATUS_HINTS.get(response.status_code)
            return f"\nHint: {hint}." if hint else ""
        stack.extend([e.__cause__, e.__context__, getattr(e, "exception", None)])
    return ""


def _short(exc: BaseException, secret: str) -> str:
    text = (str(exc).strip() or type(exc).__name__).replace(secret, "***")
    return text if len(text) <= 2000 else text[:2000] + " ..."


def _ensure_logging(level: str) -> None:
    """A stderr handler on the `dlt_bridge` logger unless one is configured (`dlt_bridge.cli`)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dlt-bridge %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)
