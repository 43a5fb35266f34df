"""The `dlt-bridge` command: parse, set up its log lines, dispatch to the subcommand.

`load` (a Singer target) and `run` (runs the tap itself): `dlt_bridge.run`; `state`: the stored
Singer state; `native`: the native dlt source (`analytics_source.cli`); `--environment`: one run
per account (`dlt_bridge.environments`). Exit codes: `dlt_bridge.exit_codes`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from dlt_bridge.args import build_parser, options_from_args
from dlt_bridge.exit_codes import EXIT_LOAD_FAILED, EXIT_OK, EXIT_USAGE

log = logging.getLogger("dlt_bridge")


def _logging_to_stderr(level: str) -> logging.Handler:
    """A handler on the `dlt_bridge` logger writing to this call's stderr (removed on return)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dlt-bridge %(levelname)s %(message)s"))
    logger = logging.getLogger("dlt_bridge")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def _show_state(args: argparse.Namespace) -> int:
    from analytics_dlt.pipeline import create_pipeline, source_name_for
    from dlt_bridge.run import print_state
    from dlt_bridge.state import destination_singer_state

    options = options_from_args(args)
    try:
        pipeline = create_pipeline(options)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if pipeline.has_pending_data:
        log.warning(
            "load packages of a failed run are pending (they are handled by the next load/run);"
            " this is the state of the last completed load"
        )
    print_state(sys.stdout, destination_singer_state(pipeline, source_name_for(options)))
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "state" and args.environment:
        from dlt_bridge.environment_state import show_environment_states

        return show_environment_states(args)
    if getattr(args, "environment", None):  # run/native --environment: one run per account
        from dlt_bridge.environments import run_environments

        return run_environments(args)
    if args.command == "state":
        return _show_state(args)
    if args.command == "show":
        from dlt_bridge.show import show

        return show(options_from_args(args), args.sql)
    if args.command == "native":
        from analytics_source.cli import run_native

        return run_native(args)
    from dlt_bridge.run import load_command

    return load_command(args, options_from_args(args), run_tap=args.command == "run")


def main(argv: Sequence[str] | None = None) -> int:
    from analytics_dlt import defaults

    args = build_parser().parse_args(argv)
    # before anything uses dlt: dlt reads its runtime settings (telemetry, log level) once
    defaults.install(dlt_log_level="WARNING" if args.log_level == "DEBUG" else "ERROR")
    handler = _logging_to_stderr(args.log_level)
    try:
        return _dispatch(args)
    except Exception as exc:  # a failure no step names: one line, the traceback at DEBUG
        from dlt_bridge.run import describe

        log.debug("unexpected failure", exc_info=True)
        log.error(
            "failed: %s: %s (run with --log-level DEBUG for details)",
            type(exc).__name__,
            describe(exc),
        )
        return EXIT_LOAD_FAILED
    finally:
        logging.getLogger("dlt_bridge").removeHandler(handler)


def console_main() -> None:
    """The `dlt-bridge` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    console_main()
