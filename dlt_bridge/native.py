"""`dlt-bridge native`: load the analytics API with the native dlt source (no Singer tap).

The source itself is `analytics_source` (its own package, dlt verified-source style); this module
is only the command-line front: flags, settings lookup, the pipeline and a run summary. The
pipeline comes from `dlt_bridge.pipeline` like the bridge's, so both commands share destination
defaults and the handling of load packages a failed run left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.sources import DltSource

from analytics_api.errors import AnalyticsAPIError
from analytics_api.limits import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
)
from analytics_api.redact import redact
from analytics_api.streams import STREAMS_BY_NAME
from analytics_source import analytics_source, settings_problems
from analytics_source.settings import (
    API_KEY_ENV,
    API_KEY_ENV_FALLBACK,
    API_KEY_KEYS,
    BASE_URL_ENV_FALLBACK,
    BASE_URL_KEYS,
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
    SOURCE_NAME,
)

__all__ = [
    "DEFAULT_DATASET_NAME",
    "DEFAULT_PIPELINE_NAME",
    "SOURCE_NAME",
    "NativeRunSummary",
    "add_native_subcommand",
    "analytics_source",
    "load_native",
    "run_native",
]

log = logging.getLogger("dlt_bridge")


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
        ids = ", ".join(self.load_ids) or "none"
        out = [f"loaded to {where}, dataset {self.dataset_name!r}, load id(s) {ids}"]
        width = max((len(t) for t in self.rows_by_table), default=0)
        out.extend(f"  {t:<{width}}  {n:>10,} rows" for t, n in sorted(self.rows_by_table.items()))
        rate = f"{self.rows_per_second:,.0f} rec/s"
        out.append(f"{self.records:,} records in {self.seconds:.1f} s ({rate})")
        return out


def load_native(
    pipeline: dlt.Pipeline,
    source: DltSource,
    *,
    loader_file_format: str = "parquet",
    on_pending: str = "load",
) -> NativeRunSummary:
    """Finish (or abort) packages a failed run left behind, sync state, then run the source.

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


_BASE_URL_HELP = (
    "API root, e.g. https://api.example.com (default: dlt config sources.analytics.base_url /"
    f" base_url, else env {BASE_URL_ENV_FALLBACK})"
)
_START_HELP = "first run only: load records whose replication key is at or after this timestamp"
_PARALLEL_HELP = "fetch several parents' child lists at once (default: on; off: one at a time)"
_PIPELINE_HELP = "dlt pipeline name; also the default DuckDB file <name>.duckdb (%(default)s)"
_PENDING_HELP = "load packages a failed run left behind: finish or discard them (%(default)s)"
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
# fmt: off
_API_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--base-url", {"help": _BASE_URL_HELP}),
    ("--start-date", {"help": _START_HELP}),
    ("--page-size", {"type": int, "default": DEFAULT_PAGE_SIZE, "help": "1..250 (%(default)s)"}),
    ("--max-retries", {"type": int, "default": DEFAULT_MAX_RETRIES, "help": "%(default)s"}),
    ("--backoff-factor", {"type": float, "default": DEFAULT_BACKOFF_FACTOR, "help": "%(default)s"}),
    ("--request-timeout", {"type": float, "default": DEFAULT_TIMEOUT, "help": "%(default)s s"}),
    ("--max-concurrency", {"type": int, "default": DEFAULT_MAX_CONCURRENCY, "help": "%(default)s"}),
    ("--parallel", {"action": argparse.BooleanOptionalAction, "default": True,
                    "help": _PARALLEL_HELP}),
    ("--streams", {"help": "comma-separated streams to load (default: all eight)"}),
]
_DESTINATION_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--destination", {"help": "dlt destination (default: dlt config, else duckdb)"}),
    ("--dataset-name", {"help": f"default: dlt config, else {DEFAULT_DATASET_NAME}"}),
    ("--pipeline-name", {"default": DEFAULT_PIPELINE_NAME, "help": _PIPELINE_HELP}),
    ("--pipelines-dir", {"help": "dlt working directory root (default: dlt's own)"}),
    ("--loader-file-format", {"choices": ["parquet", "jsonl"], "default": "parquet"}),
    ("--on-pending", {"choices": ["load", "abort"], "default": "load", "help": _PENDING_HELP}),
    ("--log-level", {"default": "INFO", "choices": _LEVELS}),
]
# fmt: on


def add_native_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add `native` to the `dlt-bridge` subcommands (an `argparse` subparsers object)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "native",
        help="load the analytics API with the native dlt source (no Singer tap)",
        description="Load the analytics API straight into a dlt destination with the native dlt"
        " source (analytics_source), built from the same contract as tap-analytics. The API key"
        f" is read from dlt secrets: env {API_KEY_ENV}, `api_key` under [sources.analytics] or"
        f" at the top of .dlt/secrets.toml (else env {API_KEY_ENV_FALLBACK}). It is never a"
        " command-line flag.",
    )
    for title, flags in (
        ("API", _API_FLAGS),
        ("destination (defaults come from dlt config, then these)", _DESTINATION_FLAGS),
    ):
        group = parser.add_argument_group(title)
        for flag, options in flags:
            group.add_argument(flag, **options)
    parser.set_defaults(handler=run_native)
    return parser


def run_native(args: argparse.Namespace) -> int:
    """`dlt-bridge native`: exit 0 on success, 1 if the run failed, 2 for bad settings."""
    from dlt_bridge.pipeline import BridgeOptions, create_pipeline

    _ensure_logging(getattr(args, "log_level", "INFO"))
    base_url = args.base_url or _lookup(
        BASE_URL_KEYS, secret=False, env_fallback=BASE_URL_ENV_FALLBACK
    )
    api_key = _lookup(API_KEY_KEYS, secret=True, env_fallback=API_KEY_ENV_FALLBACK)
    problems = settings_problems(
        base_url,
        api_key,
        page_size=args.page_size,
        start_date=args.start_date,
        max_retries=args.max_retries,
        max_concurrency=args.max_concurrency,
    )
    selected = [s.strip() for s in (args.streams or "").split(",") if s.strip()]
    if unknown := [s for s in selected if s not in STREAMS_BY_NAME]:
        known = ", ".join(STREAMS_BY_NAME)
        problems.append(f"unknown stream(s) {', '.join(unknown)}; known: {known}")
    for problem in problems:
        log.error("%s", _flag_names(problem))
    if problems:
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
    source = analytics_source(
        base_url=base_url,
        api_key=api_key,
        page_size=args.page_size,
        start_date=args.start_date,
        max_retries=args.max_retries,
        backoff_factor=args.backoff_factor,
        request_timeout=args.request_timeout,
        max_concurrency=args.max_concurrency,
        parallelized=args.parallel,
    )
    if selected:
        source = source.with_resources(*selected)
    try:
        summary = load_native(
            pipeline, source, loader_file_format=args.loader_file_format, on_pending=args.on_pending
        )
    except Exception as exc:
        log.error(
            "native load failed (the incremental state only moves with a completed load): %s%s",
            _message(exc, api_key),
            _hint(exc),
        )
        return 1
    for line in summary.lines():
        log.info("%s", line)
    return 0


def _flag_names(problem: str) -> str:
    """Settings named as the command's flags (`setting 'page_size'` -> `--page-size`)."""
    flags = ("base_url", "page_size", "start_date", "max_retries", "max_concurrency")
    for name in flags:
        problem = problem.replace(f"setting '{name}'", "--" + name.replace("_", "-"))
    return problem


_STATUS_HINTS = {
    401: f"the API key is missing or wrong: check {API_KEY_ENV} (or api_key in .dlt/secrets.toml)",
    403: "the API key lacks permission for this resource: grant it or leave the stream out"
    " (--streams)",
    422: "the API rejected the request parameters (is --page-size within 1..250?)",
}


def _contract_error(exc: BaseException) -> AnalyticsAPIError | None:
    """The contract's error inside dlt's wrappers (`__cause__`, `exception`), if any."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, AnalyticsAPIError):
            return e
        stack.extend([e.__cause__, e.__context__, getattr(e, "exception", None)])
    return None


def _hint(exc: BaseException) -> str:
    error = _contract_error(exc)
    status = re.search(r"\bHTTP (\d{3})\b", str(error)) if error is not None else None
    hint = _STATUS_HINTS.get(int(status.group(1))) if status else None
    return f"\nHint: {hint}." if hint else ""


def _message(exc: BaseException, secret: str) -> str:
    """The contract's own message when there is one (it names stream, path and what to do)."""
    error = _contract_error(exc)
    text = str(error if error is not None else exc).strip() or type(exc).__name__
    text = redact(text, secret)
    return text if len(text) <= 2000 else text[:2000] + " ..."


def _ensure_logging(level: str) -> None:
    """A stderr handler for this command's and the source's messages, unless one is set up."""
    formatter = logging.Formatter("dlt-bridge %(levelname)s %(message)s")
    for name in ("dlt_bridge", "analytics_source"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(level)
