"""`dlt-bridge native`: load the analytics API with the native dlt source (no Singer tap).

The source is `analytics_source` (its own package, dlt verified-source style); this module is
only the command-line front: flags, settings lookup, the pipeline, a run summary and readable
errors. The pipeline comes from `analytics_dlt.pipeline` like the bridge's, so both commands share
destination defaults and the handling of load packages a failed run left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.sources import DltSource

from analytics_api.errors import AnalyticsAPIError, find_error
from analytics_api.redact import redact
from analytics_api.settings import SOURCE, Setting, settings_for
from analytics_api.streams import STREAMS_BY_NAME
from analytics_dlt.deletions import merge_problem
from analytics_dlt.guard import RunGuard, exclusive
from analytics_dlt.history import is_history_table
from analytics_dlt.pipeline import MixedEnginesError
from analytics_source import analytics_source, settings_problems
from analytics_source.settings import (
    API_KEY_ENV,
    API_KEY_ENV_FALLBACK,
    API_KEY_KEYS,
    BASE_URL_ENV_FALLBACK,
    BASE_URL_KEYS,
    DEFAULT_DATASET_NAME,
    DEFAULT_PIPELINE_NAME,
)

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

    def lines(self) -> list[str]:
        """The run's summary, worded as `dlt-bridge run`'s (`dlt_bridge.summary`)."""
        where = self.destination + (f" file {self.location}" if self.location else "")
        if self.load_ids:
            ids = ", ".join(self.load_ids)
            out = [f"loaded into {where}, dataset {self.dataset_name}, load {ids}"]
        else:
            out = [f"nothing new to load into {where}, dataset {self.dataset_name}"]
        width = max((len(t) for t in self.rows_by_table), default=0)
        out.extend(f"  {t:<{width}}  {n:>10,} rows" for t, n in sorted(self.rows_by_table.items()))
        state = "state committed" if self.load_ids else "state unchanged"
        out.append(f"{self.records:,} records in {self.seconds:.1f} s; {state}")
        return out


def load_native(
    pipeline: dlt.Pipeline,
    source: DltSource,
    *,
    loader_file_format: str = "auto",
    on_pending: str = "load",
) -> NativeRunSummary:
    """Finish (or abort) packages a failed run left behind, sync state, then run the source.

    `loader_file_format="auto"`: see `analytics_dlt.pipeline.choose_loader_file_format`.

    The incremental state travels in the same load package as the data, so a failed run does not
    move it (see `analytics_dlt.pipeline.prepare`).
    """
    from analytics_dlt.hints import destination_column_name
    from analytics_dlt.pipeline import (
        choose_loader_file_format,
        load_workers,
        location_of,
        prepare,
        refuse_other_engine,
    )

    started = time.monotonic()
    loader_file_format = choose_loader_file_format(pipeline, loader_file_format)
    prepare(pipeline, "abort" if on_pending == "abort" else "load")
    # the Singer bridge's tables carry a schema named after its pipeline: never mix the engines
    refuse_other_engine(pipeline, destination_column_name(pipeline.pipeline_name))
    pipeline.extract(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]
    pipeline.normalize()
    info = pipeline.load(**load_workers(pipeline))  # one writer per DuckDB file
    trace = pipeline.last_trace
    normalized = trace.last_normalize_info if trace is not None else None
    counts = normalized.row_counts if normalized is not None else {}
    rows = {t: n for t, n in counts.items() if not t.startswith("_dlt_")}
    return NativeRunSummary(
        records=sum(n for t, n in rows.items() if not is_history_table(t)),
        rows_by_table=rows,
        load_ids=list(info.loads_ids),
        seconds=time.monotonic() - started,
        destination=str(pipeline.destination.destination_name if pipeline.destination else ""),
        dataset_name=str(pipeline.dataset_name or ""),
        location=location_of(pipeline),
    )


def _lookup(keys: Sequence[str], *, secret: bool, env_fallback: str) -> str | None:
    provider = dlt.secrets if secret else dlt.config
    for key in keys:
        value: Any = provider.get(key)
        if value not in (None, ""):
            return str(value)
    return os.environ.get(env_fallback) or None


_FLAG_SETTINGS: tuple[Setting, ...] = tuple(s for s in settings_for(SOURCE) if not s.secret)
"""The source's settings that are flags of the same name (`page_size` -> `--page-size`), from
the contract's table; the API key is never a flag (dlt secrets or an environment variable)."""
_FLAG_NOTES = {
    "base_url": "default: dlt config sources.analytics.base_url / base_url, else env "
    f"{BASE_URL_ENV_FALLBACK}",
    "start_date": "first run only",
}
_ARG_TYPES: dict[str, type] = {"integer": int, "number": float}


def _flag(setting: Setting) -> str:
    return "--" + setting.name.replace("_", "-")


def _add_setting_flag(group: Any, setting: Setting) -> None:
    """One flag from the settings table: its type, default, choices, bounds and help."""
    notes = [setting.bounds, _FLAG_NOTES.get(setting.name, "")]
    if setting.default is not None:
        notes.append("default: %(default)s")
    note = "; ".join(n for n in notes if n)
    if setting.kind == "boolean":  # --history / --no-history
        group.add_argument(
            _flag(setting),
            action=argparse.BooleanOptionalAction,
            default=setting.default,
            help=setting.help + (f" ({note})" if note else ""),
        )
        return
    group.add_argument(
        _flag(setting),
        type=_ARG_TYPES.get(setting.kind, str),
        default=setting.default,
        choices=list(setting.options) or None,
        help=setting.help + (f" ({note})" if note else ""),
    )


_PIPELINE_HELP = "also names the default DuckDB file <name>.duckdb (default: %(default)s)"
_FILE_FORMATS = ["auto", "parquet", "jsonl", "insert_values", "csv"]
_FORMAT_HELP = "auto: parquet where the destination loads it, else its preferred format"
_PENDING_HELP = "load packages a failed run left behind: finish or discard them"
_BUSY_HELP = "another run of this pipeline loading: wait up to SECONDS; 0: stop (exit 5)"
_DESTINATION_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--destination", {"help": "dlt destination (default: dlt config, else duckdb)"}),
    ("--dataset-name", {"help": f"default: dlt config, else {DEFAULT_DATASET_NAME}"}),
    ("--pipeline-name", {"default": DEFAULT_PIPELINE_NAME, "help": _PIPELINE_HELP}),
    ("--pipelines-dir", {"help": "dlt working directory root (default: dlt's own)"}),
    ("--loader-file-format", {"choices": _FILE_FORMATS, "default": "auto", "help": _FORMAT_HELP}),
    ("--on-pending", {"choices": ["load", "abort"], "default": "load", "help": _PENDING_HELP}),
    ("--wait-if-busy", {"type": float, "default": 0.0, "metavar": "SECONDS", "help": _BUSY_HELP}),
    ("--log-level", {"default": "INFO", "choices": ["DEBUG", "INFO", "WARNING", "ERROR"]}),
]


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
    api = parser.add_argument_group("API (the contract's settings, as in tap-analytics)")
    for setting in _FLAG_SETTINGS:
        _add_setting_flag(api, setting)
    api.add_argument(
        "--parallel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fetch several parents' child lists at once (default: on; off: one at a time)",
    )
    api.add_argument("--streams", help="comma-separated streams to load (default: all eight)")
    destination = parser.add_argument_group("destination (defaults: dlt config, then these)")
    for flag, options in _DESTINATION_FLAGS:
        destination.add_argument(flag, **options)
    parser.set_defaults(handler=run_native)
    return parser


def run_native(args: argparse.Namespace, *, api_key: str | None = None) -> int:
    """`dlt-bridge native`: exit 0 on success, 1 if the run failed, 2 for bad settings, 5 if
    another run of the pipeline is loading (`analytics_dlt.guard`).

    `api_key` given (per environment, `dlt_bridge.environments`) replaces the dlt secret lookup.
    """
    from analytics_dlt.pipeline import LoadOptions

    _ensure_logging(getattr(args, "log_level", "INFO"))
    base_url = args.base_url or _lookup(
        BASE_URL_KEYS, secret=False, env_fallback=BASE_URL_ENV_FALLBACK
    )
    api_key = api_key or _lookup(API_KEY_KEYS, secret=True, env_fallback=API_KEY_ENV_FALLBACK)
    options: dict[str, Any] = {
        setting.name: getattr(args, setting.name)
        for setting in _FLAG_SETTINGS
        if setting.name != "base_url"
    }
    options["parallelized"] = args.parallel
    problems = [_as_flag(p) for p in settings_problems(base_url, api_key, **options)]
    selected = [s.strip() for s in (args.streams or "").split(",") if s.strip()]
    if unknown := [s for s in selected if s not in STREAMS_BY_NAME]:
        known = ", ".join(STREAMS_BY_NAME)
        problems.append(f"unknown stream(s) {', '.join(unknown)}; known: {known}")
    for problem in problems:
        log.error("%s", problem)
    if problems:
        return 2
    assert base_url is not None and api_key is not None
    bridge_options = LoadOptions(
        pipeline_name=args.pipeline_name,
        destination=args.destination,
        dataset_name=args.dataset_name,
        pipelines_dir=args.pipelines_dir,
        loader_file_format=args.loader_file_format,
    )
    return exclusive(  # one run of the pipeline at a time; another one: EXIT_BUSY (5)
        lambda guard: _run_guarded(args, bridge_options, guard, base_url, api_key, options),
        pipeline_name=args.pipeline_name,
        pipelines_dir=args.pipelines_dir,
        wait=getattr(args, "wait_if_busy", 0.0),
        logger=log,
    )


def _run_guarded(
    args: argparse.Namespace,
    bridge_options: Any,
    guard: RunGuard,
    base_url: str,
    api_key: str,
    options: dict[str, Any],
) -> int:
    from analytics_dlt.pipeline import create_pipeline, one_connection, where_it_loads

    selected = [s.strip() for s in (args.streams or "").split(",") if s.strip()]
    try:
        pipeline = create_pipeline(bridge_options)  # resolves loader_file_format `auto`
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    guard.hold_destination(pipeline)
    log.info("loading into %s", where_it_loads(pipeline, bridge_options))
    if args.deletes != "off" and (cannot := merge_problem(pipeline)):
        log.error("--deletes %s: %s", args.deletes, cannot)
        return 2
    if args.history and (cannot := merge_problem(pipeline)):
        log.error("--history: %s", cannot)
        return 2
    source = analytics_source(base_url=base_url, api_key=api_key, **options)
    if selected:
        source = source.with_resources(*selected)
    try:
        with one_connection(pipeline, bridge_options) as held:  # as `dlt-bridge run` loads
            summary = load_native(
                held,
                source,
                loader_file_format=bridge_options.loader_file_format,
                on_pending=args.on_pending,
            )
    except MixedEnginesError as exc:
        log.error("%s", exc)
        return 2
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


def _as_flag(problem: str) -> str:
    """A source setting named as this command's flag (`setting 'page_size'` -> `--page-size`)."""
    for setting in _FLAG_SETTINGS:
        problem = problem.replace(f"setting '{setting.name}'", _flag(setting))
    return problem


_STATUS_HINTS = {
    401: f"the API key is missing or wrong: check {API_KEY_ENV} (or api_key in .dlt/secrets.toml)",
    403: "the API key lacks permission for this resource: grant it or leave the stream out"
    " (--streams)",
    422: "the API rejected the request parameters (is --page-size within 1..250?)",
}


def _hint(exc: BaseException) -> str:
    """What to do about a refusal (401, 403, 422), from the status the contract's error carries."""
    error = find_error(exc, AnalyticsAPIError)
    hint = _STATUS_HINTS.get(error.status) if error is not None and error.status else None
    return f"\nHint: {hint}." if hint else ""


def _message(exc: BaseException, secret: str) -> str:
    """The contract's own message when there is one (it names stream, path and what to do)."""
    error = find_error(exc, AnalyticsAPIError)
    text = redact(str(error if error is not None else exc).strip() or type(exc).__name__, secret)
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
