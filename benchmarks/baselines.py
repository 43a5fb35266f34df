"""Baselines, each run as its own process: `python -m benchmarks.baselines <name> ...`.

* `bare`: the bare `requests` + stdlib `json` loop that walks every page of every stream (child
  paths for every parent), sequential or with child pages on N threads. It parses each page and
  keeps only the primary keys (written to `--keys-out` at the end, so the run can be checked
  against the dump). No Singer messages, no schema, no type checks: the floor for any client.
* `rest-api`: dlt's plain `rest_api_source` with the contract's configuration corrected so that
  it builds and loads everything (a `done` paginator, `resolve` for the child path parameters,
  `include_archived=true` for event types, the documented primary keys), loading DuckDB with the
  `jsonl` loader format. Everything else is dlt's default (nesting, normalizer, no parallelism).
  Used when `benchmarks.native_source` does not provide its own.
* `native`: the native source (`dlt_bridge.native`) loaded into DuckDB, when
  `benchmarks.native_source` does not provide a runner.

The API token comes from the environment (`BENCH_API_TOKEN`), never the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

TOKEN_ENV = "BENCH_API_TOKEN"

# -- the bare loop -----------------------------------------------------------------------------


def _pages(
    session: Any, base: str, path: str, params: dict[str, str], page_size: int
) -> Iterator[list[dict[str, Any]]]:
    iterator: str | None = None
    while True:
        query: dict[str, Any] = {"limit": page_size, **params}
        if iterator is not None:
            query["iterator"] = iterator
        response = session.get(base + path, params=query, timeout=60)
        response.raise_for_status()
        page = json.loads(response.content)
        yield page["data"]
        if page["done"]:
            return
        iterator = page["iterator"]


def bare_loop(
    base_url: str, token: str, *, page_size: int = 250, threads: int = 1
) -> dict[str, list[str]]:
    """Walk every page of every stream; return each stream's primary keys in dump order.

    `threads > 1`: top-level lists are walked on the main thread and each parent's child lists
    are fetched on a pool of `threads` threads (one `requests.Session` each) as soon as the
    parent's page arrives; results are collected in parent order.
    """
    import requests

    from tap_analytics.definitions import STREAMS, StreamDefinition

    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    local = threading.local()

    def session() -> requests.Session:
        s: requests.Session | None = getattr(local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers.update(headers)
            local.session = s
        return s

    children_of = {
        d.name: [c for c in STREAMS if c.parent == d.name] for d in STREAMS if not d.is_child
    }

    def fetch_child(child: StreamDefinition, parent_id: str) -> list[str]:
        key = "{" + str(child.parent_key) + "}"
        path = child.path.replace(key, quote(parent_id, safe=""))
        pk = child.primary_key
        out: list[str] = []
        for page in _pages(session(), base, path, child.params, page_size):
            out.extend(r[pk] for r in page)
        return out

    keys: dict[str, list[str]] = {d.name: [] for d in STREAMS}
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    pending: list[tuple[str, Future[list[str]]]] = []
    for parent in STREAMS:
        if parent.is_child:
            continue
        parent_ids: list[str] = []
        for page in _pages(session(), base, parent.path, parent.params, page_size):
            for record in page:
                keys[parent.name].append(record[parent.primary_key])
                if children_of[parent.name]:
                    parent_ids.append(record[parent.primary_key])
            if pool is not None:
                for parent_id in parent_ids:
                    for child in children_of[parent.name]:
                        pending.append((child.name, pool.submit(fetch_child, child, parent_id)))
                parent_ids = []
        if pool is None:
            for parent_id in parent_ids:
                for child in children_of[parent.name]:
                    keys[child.name].extend(fetch_child(child, parent_id))
    for name, future in pending:
        keys[name].extend(future.result())
    if pool is not None:
        pool.shutdown()
    return keys


# -- dlt rest_api_source, plain ----------------------------------------------------------------


def rest_api_baseline_config(base_url: str, token: str, page_size: int = 250) -> dict[str, Any]:
    """The contract's `rest_api_source` config, corrected to build and to load every record."""
    from dlt.sources.helpers.rest_client.paginators import BasePaginator

    class DonePaginator(BasePaginator):
        """`limit` on every request, `iterator=<cursor>` after the first page, stop on `done`."""

        def __init__(self, limit: int = 250) -> None:
            super().__init__()
            self.limit = limit
            self.cursor: str | None = None

        def init_request(self, request: Any) -> None:
            request.params = {**(request.params or {}), "limit": self.limit}

        def update_state(self, response: Any, data: list[Any] | None = None) -> None:
            body = response.json()
            if body.get("done") or not body.get("iterator"):
                self._has_next_page = False
            else:
                self.cursor = body["iterator"]

        def update_request(self, request: Any) -> None:
            request.params = {**(request.params or {}), "iterator": self.cursor}

    def endpoint(path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "path": path,
            "data_selector": "data",
            "paginator": DonePaginator(page_size),
        }
        if params:
            spec["params"] = params
        return spec

    def resolve(resource: str) -> dict[str, Any]:
        return {"type": "resolve", "resource": resource, "field": "id"}

    return {
        "client": {"base_url": base_url.rstrip("/"), "auth": {"type": "bearer", "token": token}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {"name": "applications", "endpoint": endpoint("/v1/app")},
            {
                "name": "event_types",
                "primary_key": "uuid",
                "endpoint": endpoint("/v1/event-type", {"include_archived": "true"}),
            },
            {"name": "tokens", "endpoint": endpoint("/v1/management/authentication/api-token")},
            {
                "name": "endpoints",
                "endpoint": endpoint(
                    "/v1/app/{app_id}/endpoint", {"app_id": resolve("applications")}
                ),
            },
            {
                "name": "integrations",
                "endpoint": endpoint(
                    "/v1/app/{app_id}/integration", {"app_id": resolve("applications")}
                ),
            },
            {"name": "ingest_source", "endpoint": endpoint("/ingest/api/v1/source")},
            {
                "name": "ingest_source_endpoint",
                "endpoint": endpoint(
                    "/ingest/api/v1/source/{src_id}/endpoint",
                    {"src_id": resolve("ingest_source")},
                ),
            },
            {"name": "webhook_endpoint", "endpoint": endpoint("/v1/operational-webhook/endpoint")},
        ],
    }


def run_rest_api_baseline(
    base_url: str,
    token: str,
    *,
    workdir: str,
    pipeline_name: str = "rest_api_baseline",
    dataset_name: str = "analytics",
    page_size: int = 250,
    loader_file_format: str = "jsonl",
) -> None:
    """Load every stream into `<workdir>/<pipeline_name>.duckdb`, dataset `dataset_name`."""
    import dlt_bridge  # noqa: F401, I001  (telemetry off before dlt is imported)
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(rest_api_baseline_config(base_url, token, page_size))  # type: ignore[arg-type]
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(os.path.join(workdir, f"{pipeline_name}.duckdb")),
        dataset_name=dataset_name,
        pipelines_dir=os.path.join(workdir, "pipelines"),
    )
    pipeline.run(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]


def run_native(
    base_url: str,
    token: str,
    *,
    workdir: str,
    pipeline_name: str = "analytics_native",
    dataset_name: str = "analytics",
    page_size: int = 250,
    loader_file_format: str = "parquet",
    parallelized: bool = True,
) -> None:
    """The native source (`dlt_bridge.native`) into `<workdir>/<pipeline_name>.duckdb`."""
    import dlt_bridge  # noqa: F401, I001  (telemetry off before dlt is imported)
    import dlt
    from dlt_bridge.native import build_analytics_source, load_native

    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(os.path.join(workdir, f"{pipeline_name}.duckdb")),
        dataset_name=dataset_name,
        pipelines_dir=os.path.join(workdir, "pipelines"),
    )
    source = build_analytics_source(base_url, token, page_size=page_size, parallelized=parallelized)
    load_native(pipeline, source, loader_file_format=loader_file_format)


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("bare", "rest-api", "native"):
        p = sub.add_parser(name)
        p.add_argument("--base-url", required=True)
        p.add_argument("--page-size", type=int, default=250)
        if name == "bare":
            p.add_argument("--threads", type=int, default=1)
            p.add_argument("--keys-out", required=True)
        else:
            p.add_argument("--workdir", required=True)
            p.add_argument(
                "--loader-file-format", default="jsonl" if name == "rest-api" else "parquet"
            )
        if name == "native":
            p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"set {TOKEN_ENV}", file=sys.stderr)
        return 2
    if args.command == "bare":
        keys = bare_loop(args.base_url, token, page_size=args.page_size, threads=args.threads)
        with open(args.keys_out, "w", encoding="utf-8") as fh:
            json.dump(keys, fh)
    elif args.command == "rest-api":
        run_rest_api_baseline(
            args.base_url,
            token,
            workdir=args.workdir,
            page_size=args.page_size,
            loader_file_format=args.loader_file_format,
        )
    else:
        run_native(
            args.base_url,
            token,
            workdir=args.workdir,
            page_size=args.page_size,
            loader_file_format=args.loader_file_format,
            parallelized=args.parallel,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
