"""Benchmark hooks for the native dlt source and the contract-style `rest_api_source` baseline.

    python -m benchmarks.native_source compare [--records 100000] [--repeat 1]
    python -m benchmarks.native_source native   --base-url URL --workdir DIR   (token: env)
    python -m benchmarks.native_source rest-api --base-url URL --workdir DIR   (token: env)

For the benchmark suite (`benchmarks.run`), the same drop-in signatures as in
`benchmarks.baselines`, each returning a `Result` dict:

* `run_native(base_url, token, *, workdir, ...)`: `analytics_source` (the contract's client,
  json columns, merge + `_sdc_sequence`, incremental, child lists fetched `max_concurrency` at
  a time) run by `analytics_source.cli.load_native` into `<workdir>/<pipeline_name>.duckdb`,
  `parquet`.
* `run_rest_api_baseline(base_url, token, *, workdir, ...)`: the API documentation's example
  configuration (`CONTRACT_CONFIG`, as written) with only the changes it needs to build and
  to load every record (`contract_config_fixed`): a minimal `done` paginator instead of the
  `stop_condition` that dlt does not have, `resolve` for the child path parameters, `limit` and
  `include_archived=true`, and the documented primary key of event types. Everything else is
  dlt's default: nested objects flattened and arrays in child tables, no column hints, dlt's
  retrying session, no parallelism, `jsonl` loader format.
* `native_rows_per_second(base_url, token, workdir=None, **options) -> float` and
  `baseline_rows_per_second(...)`: just the rate.

Rows are the records of the eight stream tables (child tables of the baseline not counted);
seconds are the wall time of `pipeline.run` (extract + normalize + load), per step as well.
The API token comes from the environment (`BENCH_API_TOKEN`), never the command line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

TOKEN_ENV = "BENCH_API_TOKEN"
STREAM_TABLES = (
    "applications",
    "event_types",
    "tokens",
    "endpoints",
    "integrations",
    "ingest_source",
    "ingest_source_endpoint",
    "webhook_endpoint",
)

Result = dict[str, Any]


def benchmark_dataset(records: int = 100_000, seed: int = 7) -> Any:
    """A `fake_api.DatasetConfig` of about `records` records, shaped like a real account:
    most records are children (20 endpoints and 10 integrations per application)."""
    from fake_api import DatasetConfig

    scale = records / 100_000
    return DatasetConfig(
        seed=seed,
        applications=max(1, round(3000 * scale)),
        endpoints_per_app=20,
        integrations_per_app=10,
        event_types=max(1, round(500 * scale)),
        tokens=max(1, round(200 * scale)),
        ingest_sources=max(1, round(300 * scale)),
        endpoints_per_source=10,
        webhook_endpoints=max(1, round(3000 * scale)),
    )


# -- the contract's configuration -----------------------------------------------------------------


def _contract_endpoint(path: str) -> dict[str, Any]:
    return {
        "path": path,
        "data_selector": "data",
        "paginator": {"type": "cursor", "cursor_param": "iterator", "stop_condition": "done"},
    }


CONTRACT_CONFIG: dict[str, Any] = {
    "client": {
        "base_url": "https://api.example.com",
        "auth": {"type": "bearer", "token": "<dlt.secrets['api_key']>"},
    },
    "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
    "resources": [
        {"name": "applications", "endpoint": _contract_endpoint("/v1/app")},
        {"name": "event_types", "endpoint": _contract_endpoint("/v1/event-type")},
        {
            "name": "tokens",
            "endpoint": _contract_endpoint("/v1/management/authentication/api-token"),
        },
        {"name": "endpoints", "endpoint": _contract_endpoint("/v1/app/{app_id}/endpoint")},
        {"name": "integrations", "endpoint": _contract_endpoint("/v1/app/{app_id}/integration")},
        {"name": "ingest_source", "endpoint": _contract_endpoint("/ingest/api/v1/source")},
        {
            "name": "ingest_source_endpoint",
            "endpoint": _contract_endpoint("/ingest/api/v1/source/{src_id}/endpoint"),
        },
        {
            "name": "webhook_endpoint",
            "endpoint": _contract_endpoint("/v1/operational-webhook/endpoint"),
        },
    ],
}
"""The API documentation's example configuration as written (it does not build in dlt 1.31)."""

_CONTRACT_PARENTS = {"app_id": ("applications", "id"), "src_id": ("ingest_source", "id")}
_CONTRACT_PRIMARY_KEYS = {"event_types": "uuid"}  # the contract's "Resources" section
_CONTRACT_PARAMS = {"event_types": {"include_archived": "true"}}


def _minimal_done_paginator() -> type:
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

    class MinimalDonePaginator(JSONResponseCursorPaginator):
        """dlt's cursor paginator on `iterator`, stopping on `done` instead of a null cursor."""

        def update_state(self, response: Any, data: list[Any] | None = None) -> None:
            super().update_state(response, data)
            if response.json().get("done"):
                self._has_next_page = False

    return MinimalDonePaginator


def contract_config_fixed(base_url: str, token: str, page_size: int | None = 250) -> dict[str, Any]:
    """`CONTRACT_CONFIG` with the least changes that make it build and load every record."""
    paginator_class = _minimal_done_paginator()
    config = copy.deepcopy(CONTRACT_CONFIG)
    config["client"]["base_url"] = base_url.rstrip("/")
    config["client"]["auth"]["token"] = token
    for resource in config["resources"]:
        endpoint = resource["endpoint"]
        # `stop_condition` is no dlt option; without `cursor_path` dlt reads `cursors.next`
        endpoint["paginator"] = paginator_class(cursor_path="iterator", cursor_param="iterator")
        params: dict[str, Any] = dict(_CONTRACT_PARAMS.get(resource["name"], {}))
        if page_size is not None:
            params["limit"] = page_size
        for placeholder, (parent, field) in _CONTRACT_PARENTS.items():
            if "{" + placeholder + "}" in endpoint["path"]:
                params[placeholder] = {"type": "resolve", "resource": parent, "field": field}
        if params:
            endpoint["params"] = params
        if resource["name"] in _CONTRACT_PRIMARY_KEYS:
            resource["primary_key"] = _CONTRACT_PRIMARY_KEYS[resource["name"]]
    return config


# -- runners ----------------------------------------------------------------------------------


def _pipeline(workdir: str, pipeline_name: str, dataset_name: str) -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(os.path.join(workdir, f"{pipeline_name}.duckdb")),
        dataset_name=dataset_name,
        pipelines_dir=os.path.join(workdir, "pipelines"),
    )


def _result(engine: str, pipeline: Any, seconds: float, cpu: float, **extra: Any) -> Result:
    trace = pipeline.last_trace
    counts = dict(trace.last_normalize_info.row_counts) if trace is not None else {}
    rows_by_table = {t: counts.get(t, 0) for t in STREAM_TABLES}
    rows = sum(rows_by_table.values())
    steps = {s.step: round((s.finished_at - s.started_at).total_seconds(), 3) for s in trace.steps}
    return {
        "engine": engine,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds > 0 else 0,
        "cpu_seconds": round(cpu, 3),
        "rows_per_cpu_s": round(rows / cpu) if cpu > 0 else 0,
        "rows_by_table": rows_by_table,
        "other_tables": {t: n for t, n in counts.items() if t not in rows_by_table},
        "steps": steps,
        **extra,
    }


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
) -> Result:
    """A full load with the native source into `<workdir>/<pipeline_name>.duckdb`."""
    from analytics_source import analytics_source
    from analytics_source.cli import load_native

    pipeline = _pipeline(workdir, pipeline_name, dataset_name)
    started, cpu = time.perf_counter(), time.process_time()
    source = analytics_source(base_url, token, page_size=page_size, parallelized=parallelized)
    load_native(pipeline, source, loader_file_format=loader_file_format)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return _result(
        "native",
        pipeline,
        seconds,
        cpu,
        loader_file_format=loader_file_format,
        parallelized=parallelized,
        page_size=page_size,
    )


def run_rest_api_baseline(
    base_url: str,
    token: str,
    *,
    workdir: str,
    pipeline_name: str = "rest_api_baseline",
    dataset_name: str = "analytics",
    page_size: int | None = 250,
    loader_file_format: str = "jsonl",
) -> Result:
    """A full load with the contract's configuration (minimally fixed) into DuckDB."""
    from dlt.sources.rest_api import rest_api_source

    pipeline = _pipeline(workdir, pipeline_name, dataset_name)
    started, cpu = time.perf_counter(), time.process_time()
    source = rest_api_source(contract_config_fixed(base_url, token, page_size))  # type: ignore[arg-type]
    pipeline.run(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return _result(
        "rest_api_contract",
        pipeline,
        seconds,
        cpu,
        loader_file_format=loader_file_format,
        page_size=page_size,
    )


def native_rows_per_second(
    base_url: str, token: str, workdir: str | None = None, **options: Any
) -> float:
    """Rows per second of a full native load (in a temporary directory unless given one)."""
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        return float(run_native(base_url, token, workdir=workdir or tmp, **options)["rows_per_s"])


def baseline_rows_per_second(
    base_url: str, token: str, workdir: str | None = None, **options: Any
) -> float:
    """Rows per second of the contract-style `rest_api_source` baseline."""
    with tempfile.TemporaryDirectory(prefix="bench-rest-api-") as tmp:
        return float(
            run_rest_api_baseline(base_url, token, workdir=workdir or tmp, **options)["rows_per_s"]
        )


# -- command line -------------------------------------------------------------------------------


def _run_in_subprocess(kind: str, base_url: str, token: str, workdir: str, *extra: str) -> Result:
    """One run in a fresh interpreter (imports timed, no state shared between runs)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.native_source",
            kind,
            "--base-url",
            base_url,
            "--workdir",
            workdir,
            *extra,
        ],
        env={**os.environ, TOKEN_ENV: token},
        cwd=str(Path(__file__).resolve().parent.parent),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(records: int = 100_000, repeat: int = 1) -> list[Result]:
    """Start the fake API (own process) with ~`records` records and time every variant."""
    from fake_api import FakeAPIProcess

    variants: list[tuple[str, list[str]]] = [
        ("rest-api", ["--loader-file-format", "jsonl"]),
        ("native", ["--loader-file-format", "parquet"]),
        ("native", ["--loader-file-format", "parquet", "--no-parallel"]),
        ("native", ["--loader-file-format", "jsonl"]),
    ]
    results: list[Result] = []
    with FakeAPIProcess(benchmark_dataset(records), prerender=250) as api:
        for _ in range(repeat):
            for kind, extra in variants:
                with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
                    result = _run_in_subprocess(kind, api.url, api.token, tmp, *extra)
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
    return results


def _table(results: list[Result]) -> str:
    lines = [
        f"{'engine':<20} {'format':<8} {'parallel':<9} {'rows':>8} {'s':>7} {'rows/s':>8}"
        f" {'cpu s':>7} {'rows/cpu s':>10}"
    ]
    for r in results:
        lines.append(
            f"{r['engine']:<20} {r['loader_file_format']:<8} {r.get('parallelized', '-')!s:<9}"
            f" {r['rows']:>8,} {r['seconds']:>7.1f} {r['rows_per_s']:>8,}"
            f" {r['cpu_seconds']:>7.1f} {r['rows_per_cpu_s']:>10,}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.native_source")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="start the fake API and time every variant")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1)
    for name in ("native", "rest-api"):
        p = sub.add_parser(name)
        p.add_argument("--base-url", required=True)
        p.add_argument("--workdir", required=True)
        p.add_argument("--page-size", type=int, default=250)
        p.add_argument("--loader-file-format", default="parquet" if name == "native" else "jsonl")
        if name == "native":
            p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.command == "compare":
        print(_table(compare(args.records, args.repeat)))
        return 0
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"set {TOKEN_ENV}", file=sys.stderr)
        return 2
    if args.command == "native":
        result = run_native(
            args.base_url,
            token,
            workdir=args.workdir,
            page_size=args.page_size,
            loader_file_format=args.loader_file_format,
            parallelized=args.parallel,
        )
    else:
        result = run_rest_api_baseline(
            args.base_url,
            token,
            workdir=args.workdir,
            page_size=args.page_size,
            loader_file_format=args.loader_file_format,
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
