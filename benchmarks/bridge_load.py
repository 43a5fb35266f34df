"""Benchmark: the Singer bridge against a plain dlt resource, same data, destination and format.

    python benchmarks/bridge_load.py [--records 100000] [--formats parquet,jsonl] [--repeat 1]

Each case runs in a fresh process (so peak RSS is its own) and loads into its own DuckDB file:

* `bridge`: `dlt-bridge load` reading a file of synthetic Singer messages shaped like
  tap-analytics output (8 streams, the tap's schemas, child SCHEMA re-sent, a STATE every 1,000
  records): parse (msgspec) + checks + fan-out + extract/normalize/load, state committed.
* `plain`: one `@dlt.resource` per stream yielding lists of 5,000 of the same records, read
  from one JSON-lines file per stream (orjson, no checks, no state), with the same hints from
  `analytics_dlt.hints` (merge, `_sdc_sequence`), `pipeline.run`.

Both use the DuckDB destination, the same loader file format and the same dlt settings (dlt's
defaults plus the bridge's two changes: no gzip for the extracted, intermediate files; one load
worker on DuckDB).

Prints rows/s, peak RSS and the bridge/plain ratios.

With `--with-tap`, also the whole chain against the local fake API (a separate process serving
about `--records` records): `tap` alone (`tap-analytics > /dev/null`) and `run`
(`dlt-bridge run`: the tap piped into the bridge, concurrently), to show what the bridge adds
to a real sync.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _case_bridge(workdir: Path, records: int, fmt: str) -> dict[str, Any]:
    from analytics_dlt.pipeline import LoadOptions, create_pipeline, prepare
    from benchmarks.synthetic import synthetic_messages
    from dlt_bridge.loader import SingerLoader
    from dlt_bridge.messages import SingerReader

    source = workdir / "input.jsonl"
    with open(source, "wb") as fh:
        fh.writelines(synthetic_messages(records))
    os.chdir(workdir)
    options = LoadOptions(
        pipeline_name="bench_bridge",
        pipelines_dir=str(workdir / "pipelines"),
        loader_file_format=fmt,
        progress_interval=0,
    )
    started = time.perf_counter()
    pipeline = create_pipeline(options)
    prepare(pipeline)
    with open(source, "rb") as fh:
        summary = SingerLoader(pipeline, options).load(SingerReader(fh))
    seconds = time.perf_counter() - started
    return {"rows": sum(summary.rows_by_table.values()), "seconds": seconds}


def _case_plain(workdir: Path, records: int, fmt: str) -> dict[str, Any]:
    import dlt
    import orjson

    from analytics_dlt.hints import MAX_TABLE_NESTING, SequenceGenerator, table_hints
    from benchmarks.synthetic import stream_schemas, synthetic_record

    schemas = stream_schemas()
    names = list(schemas)
    # the same records as the bridge's input, one JSON-lines file per stream (made before timing)
    for index, name in enumerate(names):
        schema, keys = schemas[name]
        with open(workdir / f"{name}.jsonl", "wb") as fh:
            for i in range(index, records, len(names)):
                fh.write(orjson.dumps(synthetic_record(name, schema, keys[0], i)) + b"\n")
    sequence = SequenceGenerator()
    os.chdir(workdir)
    # the same dlt settings the bridge applies (`analytics_dlt.defaults`: no gzip for the
    # intermediate extract files, one load worker on DuckDB), set the plain dlt way in this
    # benchmark's own child process
    os.environ.setdefault("SOURCES__DATA_WRITER__DISABLE_COMPRESSION", "true")
    os.environ.setdefault("LOAD__WORKERS", "1")

    def make(name: str) -> Any:
        schema, keys = schemas[name]
        hints = table_hints(name, schema, keys)

        @dlt.resource(
            name=name,
            columns=hints["columns"],
            primary_key=hints["primary_key"],
            write_disposition=hints["write_disposition"],  # type: ignore[arg-type]
        )
        def rows() -> Any:
            batch = []
            with open(workdir / f"{name}.jsonl", "rb") as fh:
                for line in fh:
                    rec = orjson.loads(line)
                    rec["_sdc_sequence"] = sequence()
                    batch.append(rec)
                    if len(batch) >= 5000:
                        yield batch
                        batch = []
            if batch:
                yield batch

        return rows

    @dlt.source(name="plain", max_table_nesting=MAX_TABLE_NESTING)
    def plain() -> Any:
        return [make(name) for name in names]

    started = time.perf_counter()
    pipeline = dlt.pipeline(
        "bench_plain",
        destination="duckdb",
        dataset_name="analytics",
        pipelines_dir=str(workdir / "pipelines"),
    )
    pipeline.run(plain(), loader_file_format=fmt)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    counts = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    rows = sum(v for k, v in counts.items() if not k.startswith("_dlt"))
    return {"rows": rows, "seconds": seconds}


def _tap_config(workdir: Path) -> Path:
    path = workdir / "tap-config.json"
    path.write_text(
        json.dumps(
            {"api_key": os.environ["BENCH_API_TOKEN"], "base_url": os.environ["BENCH_API_URL"]}
        )
    )
    return path


def _case_tap(workdir: Path, records: int, fmt: str) -> dict[str, Any]:
    config = _tap_config(workdir)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--config", str(config)],
        capture_output=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    rows = out.stdout.count(b'"type":"RECORD"') + out.stdout.count(b'"type": "RECORD"')
    return {"rows": rows, "seconds": seconds}


def _case_run(workdir: Path, records: int, fmt: str) -> dict[str, Any]:
    import contextlib
    import io

    from dlt_bridge.cli import main as bridge_main

    config = _tap_config(workdir)
    os.chdir(workdir)
    err = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = bridge_main(
            [
                "run",
                "--config",
                str(config),
                "--pipelines-dir",
                str(workdir / "pipelines"),
                "--loader-file-format",
                fmt,
                "--progress-interval",
                "0",
                "--log-level",
                "WARNING",
            ]
        )
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(err.getvalue()[-3000:])
    import duckdb

    con = duckdb.connect(str(workdir / "tap_analytics.duckdb"), read_only=True)
    names = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analytics'"
            " and table_name not like '_dlt%'"
        ).fetchall()
    ]
    rows = 0
    for n in names:
        count = con.execute(f'select count(*) from analytics."{n}"').fetchone()
        rows += int(count[0]) if count else 0
    con.close()
    return {"rows": rows, "seconds": seconds}


CASES = {"bridge": _case_bridge, "plain": _case_plain, "tap": _case_tap, "run": _case_run}


def _child(case: str, records: int, fmt: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{case}-") as tmp:
        result = CASES[case](Path(tmp), records, fmt)
        os.chdir("/")
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _run_case(
    case: str, records: int, fmt: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--records", str(records), "--formats", fmt],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise SystemExit(f"case {case}/{fmt} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _tap_cases(records: int, fmt: str, repeat: int) -> dict[str, dict[str, Any]]:
    from fake_api import DatasetConfig, start_fake_api

    per_app = 10  # 1 application + 7 endpoints + 2 integrations
    dataset = DatasetConfig(
        applications=max(records // per_app, 1), endpoints_per_app=7, integrations_per_app=2
    )
    api = start_fake_api(dataset, in_process=False)
    try:
        env = {"BENCH_API_URL": api.url, "BENCH_API_TOKEN": api.token}
        out: dict[str, dict[str, Any]] = {}
        for case in ("tap", "run"):
            runs = [_run_case(case, records, fmt, env) for _ in range(max(repeat, 1))]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            out[case if case == "tap" else f"run, {fmt}"] = best
            print(f"  {case:<6} {best['rows']:>8,} rows {best['seconds']:6.2f} s", file=sys.stderr)
        return out
    finally:
        api.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--formats", default="parquet,jsonl")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best is kept")
    parser.add_argument(
        "--with-tap", action="store_true", help="also time tap alone and tap | bridge (run)"
    )
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.records, args.formats)
        return 0
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for fmt in args.formats.split(","):
        for case in ("plain", "bridge"):
            runs = [_run_case(case, args.records, fmt) for _ in range(max(args.repeat, 1))]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results[(case, fmt)] = best
            print(
                f"  {case:<6} {fmt:<7} {best['rows']:>8,} rows {best['seconds']:6.2f} s",
                file=sys.stderr,
            )
    tap_results: dict[str, dict[str, Any]] = {}
    if args.with_tap:
        tap_results = _tap_cases(args.records, args.formats.split(",")[0], args.repeat)
    header = (
        f"{'case':<16}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'peak RSS MB':>13}"
        f"{'time x plain':>14}{'RSS x plain':>13}"
    )
    print(f"\nLoading {args.records:,} records into DuckDB (one process per case)\n")
    print(header)
    print("-" * len(header))
    for (case, fmt), r in results.items():
        plain = results[("plain", fmt)]
        print(
            f"{case + ', ' + fmt:<16}{r['rows']:>9,}{r['seconds']:>9.2f}"
            f"{r['rows'] / r['seconds']:>10,.0f}{r['peak_rss_mb']:>13.0f}"
            f"{r['seconds'] / plain['seconds']:>14.2f}"
            f"{r['peak_rss_mb'] / plain['peak_rss_mb']:>13.2f}"
        )
    if tap_results:
        tap = tap_results["tap"]
        print("\nWhole chain against the fake API (run = tap piped into the bridge)\n")
        print(f"{'case':<16}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'peak RSS MB':>13}{'x tap':>8}")
        for case, r in tap_results.items():
            print(
                f"{case:<16}{r['rows']:>9,}{r['seconds']:>9.2f}{r['rows'] / r['seconds']:>10,.0f}"
                f"{r['peak_rss_mb']:>13.0f}{r['seconds'] / tap['seconds']:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
