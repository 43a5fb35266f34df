"""Run either engine against an API root and return what came out, in one shape.

    outcome = run("tap" | "native", base_url, api_key, streams=["applications"], page_size=2,
                  workdir=tmp_path)

* tap: `TapAnalytics.sync_all()` in this process, stdout captured and parsed as Singer lines.
* native: `analytics_source(...)` through a real dlt pipeline into a DuckDB file under `workdir`,
  tables read back and turned into records with the API's field names.

Both run under one capture: every logging record of every logger at DEBUG (whatever the
loggers' levels or `propagate`), stdout, stderr and Python warnings. The error is the original
`analytics_api` exception (dlt's `PipelineStepFailed` / `ResourceExtractionError` unwrapped).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from analytics_api.errors import AnalyticsAPIError
from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_api.timestamps import canonical, canonical_from_datetime
from tests.support import parse_tap_output

ENGINES = ("tap", "native")
DATASET = "analytics"

_run_ids = itertools.count()


@dataclass
class Outcome:
    """What one engine run produced."""

    engine: str
    records: dict[str, list[dict[str, Any]]]
    """Output rows per stream, with the API's field names (native: read back from DuckDB)."""
    columns: dict[str, set[str]]
    """Fields per stream as the output declares them (tap: SCHEMA properties; native: the
    table's columns mapped back to field names where they match one)."""
    error: BaseException | None
    """The original error (an `analytics_api` exception where there is one)."""
    error_chain_text: str
    """Every message of the raised exception's chain, dlt's wrappers included."""
    log_records: list[logging.LogRecord]
    log_text: str
    """All log messages (DEBUG and up), stdout, stderr and warnings of the run."""
    output_text: str
    """Everything the run wrote as data: Singer stdout, or every row of every DuckDB table."""
    bookmarks: dict[str, Any] = field(default_factory=dict)
    """The replication-key value each stream's state holds after the run (tap: the last STATE
    message's `replication_key_value`; native: the pipeline state's incremental `last_value`)."""

    @property
    def records_by_stream(self) -> dict[str, list[dict[str, Any]]]:
        return self.records

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        """The error's text; for the SDK's config errors, with the problems it lists (as the
        tap's command line prints them)."""
        if self.error is None:
            return ""
        details = getattr(self.error, "errors", None)
        if isinstance(details, list) and details:
            return f"{self.error}: " + "; ".join(map(str, details))
        return str(self.error)

    def warnings_mentioning(self, word: str) -> list[logging.LogRecord]:
        """Log records at WARNING or above whose message contains `word`."""
        return [r for r in self.log_records if r.levelno >= logging.WARNING and word in _message(r)]

    def everything(self) -> str:
        """Every text the run produced: error chain, logs, output."""
        return "\n".join([self.error_chain_text, self.log_text, self.output_text])


def run(
    engine: str,
    base_url: str,
    api_key: str,
    streams: Sequence[str] | None = None,
    *,
    workdir: Path | None = None,
    **settings: Any,
) -> Outcome:
    """Run `engine` for `streams` (all when None) with the given settings.

    `workdir` holds the native engine's pipeline and DuckDB file (a temporary directory, removed
    afterwards, when not given). Settings are the source's argument names (`page_size`,
    `max_retries`, `backoff_factor`, `request_timeout`, `max_concurrency`, `start_date`); the
    tap takes them as config keys and ignores `parallelized`.
    """
    if engine == "tap":
        return _run_tap(base_url, api_key, streams, settings)
    if engine == "native":
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
                return _run_native(base_url, api_key, streams, settings, Path(tmp))
        return _run_native(base_url, api_key, streams, settings, workdir)
    raise ValueError(engine)


# -- capturing everything ------------------------------------------------------------------------


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # a bad format string must not hide the rest
        text = f"{record.msg!r} {record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += "\n" + _chain_text(record.exc_info[1])
    if record.exc_text:
        text += "\n" + record.exc_text
    return text


@dataclass
class _Captured:
    records: list[logging.LogRecord] = field(default_factory=list)
    stdout: io.BytesIO = field(default_factory=io.BytesIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)
    warnings: list[warnings.WarningMessage] = field(default_factory=list)

    def log_text(self) -> str:
        lines = [f"{logging.getLevelName(r.levelno)} {r.name}: {_message(r)}" for r in self.records]
        lines += [str(w.message) for w in self.warnings]
        lines.append(self.stderr.getvalue())
        lines.append(self.stdout.getvalue().decode("utf-8", errors="replace"))
        return "\n".join(lines)


@contextlib.contextmanager
def _capture() -> Iterator[_Captured]:
    """Every log record at any level from any logger, stdout, stderr and warnings."""
    captured = _Captured()
    original_call_handlers = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        captured.records.append(record)
        original_call_handlers(self, record)

    stdout = io.TextIOWrapper(captured.stdout, encoding="utf-8", write_through=True)
    with (
        mock.patch.object(logging.Logger, "isEnabledFor", lambda self, level: True),
        mock.patch.object(logging.Logger, "callHandlers", call_handlers),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(captured.stderr),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            yield captured
        finally:
            stdout.flush()
            stdout.detach()  # the wrapper must not close the buffer when it goes away
            captured.warnings = list(caught)


def _chain_text(exc: BaseException) -> str:
    return "\n".join(f"{type(e).__name__}: {e!s} {e!r}" for e in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (`__cause__`, `__context__`, dlt's `.exception`)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    queue: list[Any] = [exc]
    while queue:
        e = queue.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        queue.extend([getattr(e, "exception", None), e.__cause__, e.__context__])
    return out


def original_error(exc: BaseException) -> BaseException:
    """The `analytics_api` error inside dlt's wrappers, else the innermost cause."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, AnalyticsAPIError):
            return e
    innermost = exc
    while True:
        inner = getattr(innermost, "exception", None) or innermost.__cause__
        if not isinstance(inner, BaseException) or inner is innermost:
            return innermost
        innermost = inner


# -- the tap -------------------------------------------------------------------------------------


@cache
def _discovered_catalog() -> str:
    from tap_analytics.tap import TapAnalytics

    tap = TapAnalytics(config=None, parse_env_config=False, validate_config=False)
    return json.dumps(tap.catalog_dict)


def tap_catalog(streams: Sequence[str] | None) -> dict[str, Any]:
    """The discovered catalog with exactly `streams` selected (all when None)."""
    catalog = json.loads(_discovered_catalog())
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = streams is None or entry["tap_stream_id"] in streams
    return catalog


def _run_tap(
    base_url: str, api_key: str, streams: Sequence[str] | None, settings: dict[str, Any]
) -> Outcome:
    from tap_analytics.tap import TapAnalytics

    settings = {k: v for k, v in settings.items() if k != "parallelized"}
    config = {"api_key": api_key, "base_url": base_url, **settings}
    error: BaseException | None = None
    with _capture() as captured:
        try:
            tap = TapAnalytics(config=config, catalog=tap_catalog(streams), parse_env_config=False)
            try:
                tap.sync_all()
            finally:
                tap.message_writer.flush()  # type: ignore[attr-defined]
        except Exception as exc:
            error = exc
    stdout = captured.stdout.getvalue().decode("utf-8")
    output = parse_tap_output(stdout)
    records: dict[str, list[dict[str, Any]]] = {}
    for message in output.of_type("RECORD"):
        records.setdefault(message["stream"], []).append(message["record"])
    columns = {m["stream"]: set(m["schema"]["properties"]) for m in output.of_type("SCHEMA")}
    state = output.last_state
    bookmarks = {
        stream: entry["replication_key_value"]
        for stream, entry in (state.get("bookmarks") or {}).items()
        if isinstance(entry, dict) and entry.get("replication_key_value") is not None
    }
    return Outcome(
        engine="tap",
        records=records,
        columns=columns,
        error=None if error is None else original_error(error),
        error_chain_text="" if error is None else _chain_text(error),
        log_records=captured.records,
        log_text=captured.log_text(),
        output_text=stdout,
        bookmarks=bookmarks,
    )


# -- the native dlt source ------------------------------------------------------------------------


def _run_native(
    base_url: str,
    api_key: str,
    streams: Sequence[str] | None,
    settings: dict[str, Any],
    workdir: Path,
) -> Outcome:
    import dlt

    from analytics_source import analytics_source

    run_id = next(_run_ids)
    database = workdir / f"conformance_{run_id}.duckdb"
    error: BaseException | None = None
    pipeline = None
    with _capture() as captured:
        try:
            pipeline = dlt.pipeline(
                pipeline_name=f"conformance_{run_id}",
                pipelines_dir=str(workdir / "pipelines"),
                destination=dlt.destinations.duckdb(str(database)),
                dataset_name=DATASET,
            )
            source = analytics_source(base_url, api_key, **settings)
            if streams is not None:
                source = source.with_resources(*streams)
            pipeline.run(source)
        except Exception as exc:
            error = exc
    records, columns, output_text = _read_back(database)
    bookmarks: dict[str, Any] = {}
    if pipeline is not None:
        resources = pipeline.state.get("sources", {}).get("analytics", {}).get("resources", {})
        for stream, resource_state in resources.items():
            for cursor in (resource_state.get("incremental") or {}).values():
                if cursor.get("last_value") is not None:
                    bookmarks[stream] = cursor["last_value"]
    return Outcome(
        engine="native",
        records=records,
        columns=columns,
        error=None if error is None else original_error(error),
        error_chain_text="" if error is None else _chain_text(error),
        log_records=captured.records,
        log_text=captured.log_text(),
        output_text=output_text,
        bookmarks=bookmarks,
    )


def _read_back(
    database: Path,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, set[str]], str]:
    """Rows of every stream table as records with the API's field names, their columns, and
    every row of every table of the dataset (dlt's own included) as text."""
    import duckdb

    from analytics_dlt.hints import SEQUENCE_COLUMN, destination_column_name

    records: dict[str, list[dict[str, Any]]] = {}
    columns: dict[str, set[str]] = {}
    texts: list[str] = []
    if not database.exists():
        return records, columns, ""
    with duckdb.connect(str(database), read_only=True) as con:
        described = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
            [DATASET],
        ).fetchall()
        tables: dict[str, dict[str, str]] = {}
        for table, column, data_type in described:
            tables.setdefault(table, {})[column] = data_type
        for table, types in tables.items():
            cursor = con.execute(f'SELECT * FROM "{DATASET}"."{table}"')
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            texts.extend(repr(row) for row in rows)
            if table not in STREAMS_BY_NAME:
                continue
            properties = STREAMS_BY_NAME[table].schema["properties"]
            to_field = {destination_column_name(p): p for p in properties}
            keep = [n for n in names if not n.startswith("_dlt") and n != SEQUENCE_COLUMN]
            columns[table] = {to_field.get(n, n) for n in keep}
            out = records.setdefault(table, [])
            for row in rows:
                values = dict(zip(names, row, strict=True))
                out.append({to_field.get(n, n): _from_column(values[n], types[n]) for n in keep})
    return records, columns, "\n".join(texts)


def _from_column(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return canonical_from_datetime(value)
    if data_type == "JSON" and isinstance(value, str):
        return json.loads(value)
    return value


# -- the command lines --------------------------------------------------------------------------


@dataclass
class CliOutcome:
    """What one engine's command line produced, as a user sees it."""

    engine: str
    returncode: int
    stdout: str
    stderr: str
    output_text: str
    """stdout, or (native) every row of every DuckDB table."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def everything(self) -> str:
        return "\n".join([self.stdout, self.stderr, self.output_text])


def run_cli(
    engine: str,
    base_url: str,
    api_key: str,
    streams: Sequence[str],
    *,
    workdir: Path,
    **settings: Any,
) -> CliOutcome:
    """Run the engine's command line at DEBUG level in a child process.

    tap: `python -m tap_analytics --config ... --catalog ...`; native: `python -m dlt_bridge
    native ...` with the key in `SOURCES__ANALYTICS__API_KEY` (it is never a flag). The child
    gets a copy of this environment; this process's environment is not changed.
    """
    env = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "TAP_ANALYTICS_LOGLEVEL": "DEBUG",
        "RUNTIME__LOG_LEVEL": "DEBUG",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])),
    }
    if engine == "tap":
        config = workdir / "tap-config.json"
        config.write_text(json.dumps({"api_key": api_key, "base_url": base_url, **settings}))
        catalog = workdir / "tap-catalog.json"
        catalog.write_text(json.dumps(tap_catalog(streams)))
        args = ["-m", "tap_analytics", "--config", str(config), "--catalog", str(catalog)]
    elif engine == "native":
        env["SOURCES__ANALYTICS__API_KEY"] = api_key
        args = ["-m", "dlt_bridge", "native", "--base-url", base_url]
        args += ["--streams", ",".join(streams), "--destination", "duckdb"]
        args += ["--pipeline-name", "conformance_cli", "--pipelines-dir", str(workdir / "p")]
        args += ["--log-level", "DEBUG"]
        for name, value in settings.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
    else:
        raise ValueError(engine)
    result = subprocess.run(
        [sys.executable, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output_text = result.stdout
    if engine == "native":
        output_text = _read_back(workdir / "conformance_cli.duckdb")[2]
    return CliOutcome(engine, result.returncode, result.stdout, result.stderr, output_text)


_REPO = Path(__file__).resolve().parents[2]


# -- comparing records ----------------------------------------------------------------------------


def comparable(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` on the stream's schema fields (missing = null), timestamps to the microsecond
    (DuckDB keeps microseconds), so tap records, native rows and the API's data compare."""
    properties = STREAMS_BY_NAME[stream].schema["properties"]
    out: dict[str, Any] = {}
    for name, spec in properties.items():
        value = record.get(name)
        if isinstance(value, str) and spec.get("format") == "date-time":
            value = canonical(value)[:26]
        out[name] = value
    return out


def comparable_set(stream: str, records: Sequence[dict[str, Any]]) -> list[str]:
    """The records as sorted canonical JSON lines: equal lists mean equal multisets."""
    return sorted(json.dumps(comparable(stream, r), sort_keys=True) for r in records)


def all_streams() -> list[str]:
    return [s.name for s in STREAMS]


__all__ = [
    "DATASET",
    "ENGINES",
    "CliOutcome",
    "Outcome",
    "all_streams",
    "comparable",
    "comparable_set",
    "original_error",
    "run",
    "run_cli",
    "tap_catalog",
]
