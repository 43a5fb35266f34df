"""The `dlt-bridge` command line: subcommands, flags and their defaults (parsing only)."""

from __future__ import annotations

import argparse
from typing import Any

from analytics_api.limits import DELETE_MODES

DEFAULT_PIPELINE_NAME = "tap_analytics"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The destination and loading flags of `load` and `run`."""
    _add_destination(parser)
    _add_loading(parser)


def _add_destination(parser: argparse.ArgumentParser) -> None:
    """Which pipeline and destination (and the log level): every subcommand but `native`."""
    g = parser.add_argument_group("destination (defaults come from dlt config, then these)")
    g.add_argument(
        "--destination",
        help="dlt destination name (default: dlt config `destination_type`, else duckdb)",
    )
    g.add_argument(
        "--dataset-name", help="dataset/schema to load into (default: dlt config, else analytics)"
    )
    g.add_argument(
        "--pipeline-name",
        default=DEFAULT_PIPELINE_NAME,
        help="dlt pipeline name; also the default DuckDB file <name>.duckdb in the current"
        " directory (default: %(default)s)",
    )
    g.add_argument("--pipelines-dir", help="dlt working directory root (default: dlt's own)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr; DEBUG also shows the tap's and dlt's own lines"
        " (default: %(default)s)",
    )


def _add_loading(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("loading")
    g.add_argument(
        "--loader-file-format",
        choices=["auto", "parquet", "jsonl", "insert_values", "csv"],
        default="auto",
        help="file format of the load packages; auto: parquet (the faster one measured) where"
        " the destination loads it, else the destination's preferred format, e.g. insert_values"
        " on PostgreSQL (default: %(default)s)",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=5000,
        help="rows per list handed to dlt, per table (default: %(default)s)",
    )
    g.add_argument(
        "--commit-every",
        type=_positive_int,
        default=0,
        metavar="RECORDS",
        help="close a load package at the first STATE after this many records, so state is"
        " committed during long runs (default: 0 = one load package per run)",
    )
    g.add_argument(
        "--on-pending",
        choices=["load", "abort"],
        default="load",
        help="what to do with load packages a failed run left behind, before anything else"
        " (default: %(default)s them)",
    )
    g.add_argument(
        "--wait-if-busy",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when another run of this pipeline (or into its DuckDB file or server dataset) is"
        " loading, wait up to SECONDS for it to finish; 0: stop at once with exit code 5,"
        " having done nothing (default: %(default)s)",
    )
    g.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr; 0 disables (default: %(default)s)",
    )
    g.add_argument(
        "--history",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also keep every version of every record in <stream>_history (_valid_from,"
        " _valid_to), committed with the run's rows and state; docs/history.md (default: off)",
    )


def _add_deletes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deletes",
        choices=list(DELETE_MODES),
        default="off",
        help="apply ACTIVATE_VERSION: rows a stream's complete version did not send get"
        " _sdc_deleted_at set (soft) or are deleted (hard), committed with the run's rows and"
        " state; off ignores ACTIVATE_VERSION. `run` puts the tap in its deletion mode"
        " (default: %(default)s)",
    )


ENVIRONMENT_HELP = (
    "run this environment of the environments file (ANALYTICS_ENVIRONMENTS), with its own"
    " base_url, key, pipeline and destination; repeat it for several, `all` for every one, in"
    " file order. One failing does not stop the others (docs/bridge.md)"
)


class _Parser(argparse.ArgumentParser):
    """Checks that need more than one flag: `run` takes --config or --environment."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        if parsed.command == "run" and not parsed.config and not parsed.environment:
            self.error("run: --config is required (or --environment)")
        return parsed


def _add_environment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--environment", action="append", metavar="NAME", help=ENVIRONMENT_HELP)


def add_tap_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how `run` starts the tap."""
    parser.add_argument(
        "--config",
        help="tap config file (passed to the tap); required unless --environment is given, and"
        " then it may not set base_url or api_key",
    )
    parser.add_argument("--catalog", help="tap catalog file (passed to the tap)")
    parser.add_argument(
        "--tap-command",
        help="command that runs the tap (default: this Python's `-m tap_analytics`)",
    )
    _add_environment(parser)
    _add_deletes(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dlt-bridge",
        description="Load Singer messages into a dlt destination (DuckDB by default).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_load = sub.add_parser(
        "load",
        help="act as a Singer target: read messages on stdin, print committed STATE on stdout",
    )
    p_load.add_argument(
        "--input", help="read messages from this file instead of stdin", metavar="FILE"
    )
    _add_common(p_load)
    _add_deletes(p_load)
    p_run = sub.add_parser(
        "run",
        help="run tap-analytics with the state stored in the destination and load its output",
    )
    add_tap_flags(p_run)
    _add_common(p_run)
    p_state = sub.add_parser("state", help="print the Singer state stored in the destination")
    _add_destination(p_state)
    p_state.add_argument(
        "--environment",
        action="append",
        metavar="NAME",
        help="print the state of this environment of the environments file"
        " (ANALYTICS_ENVIRONMENTS), one JSON line each; repeat it, or `all`",
    )

    from analytics_source.cli import add_native_subcommand
    from dlt_bridge.show import add_show_subcommand

    _add_destination(add_show_subcommand(sub))

    _add_environment(add_native_subcommand(sub))
    return parser


def options_from_args(args: argparse.Namespace) -> Any:
    from analytics_dlt.pipeline import LoadOptions

    options = LoadOptions(
        pipeline_name=args.pipeline_name,
        destination=args.destination,
        dataset_name=args.dataset_name,
        pipelines_dir=args.pipelines_dir,
        **{name: getattr(args, name) for name in _LOADING if hasattr(args, name)},
    )
    options.batch_size = max(options.batch_size, 1)
    return options


_LOADING = ("loader_file_format", "batch_size", "progress_interval", "on_pending", "commit_every")
"""`LoadOptions` fields set by the loading flags (`load` and `run` only)."""
