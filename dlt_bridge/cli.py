"""`dlt-bridge load` (a Singer target) and `dlt-bridge run` (runs the tap itself).

Exit codes: 0 success; 1 the load (or destination) failed; 2 bad command line; 3 bad Singer input
(nothing of the run committed); 4 the tap failed in `run` mode (what it sent before failing is
loaded with the last STATE it sent, which only covers records already sent).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from analytics_api.errors import find_error
from dlt_bridge.args import DEFAULT_PIPELINE_NAME, build_parser, options_from_args, tap_flags
from dlt_bridge.state_hint import KEY_FLAGS, read_hint, write_hint
from dlt_bridge.tap_process import TapProcess, TapStartError, same_state

EXIT_OK = 0
EXIT_LOAD_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_TAP_FAILED = 4

log = logging.getLogger("dlt_bridge")


def _logging_to_stderr(level: str) -> logging.Handler:
    """A handler on the `dlt_bridge` logger writing to this call's stderr (removed on return)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dlt-bridge %(levelname)s %(message)s"))
    logger = logging.getLogger("dlt_bridge")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


class ArrowJsonNotice(logging.Filter):
    """Drops dlt's warning that the bridge's arrow tables disagree with its column hints.

    The bridge hands dlt the JSON object columns as arrow strings, hinted `json`; dlt keeps the
    hint and loads them as JSON, as intended, but warns once per stream on every run. Only that
    warning, for the bridge's own resource, is dropped, and only while a command runs.
    """

    TEXT = "In resource: singer_messages, when merging arrow schema with dlt schema"

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and self.TEXT in record.getMessage())


def default_tap_command() -> list[str]:
    """`python -m tap_analytics` with this interpreter, else the script next to it.

    Looks for the package's `__main__.py` without importing the tap into the bridge.
    """
    spec = importlib.util.find_spec("tap_analytics")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if any(os.path.exists(os.path.join(loc, "__main__.py")) for loc in locations):
        return [sys.executable, "-m", "tap_analytics"]
    script = os.path.join(os.path.dirname(sys.executable), "tap-analytics")
    return [script if os.path.exists(script) else "tap-analytics"]


def _find_input_error(exc: BaseException) -> Any:
    from dlt_bridge.messages import BridgeInputError

    return find_error(exc, BridgeInputError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " ..."


def _print_state(out: IO[str], value: Any) -> None:
    import orjson

    out.write(orjson.dumps(value).decode("utf-8") + "\n")
    out.flush()


def _start_tap(args: argparse.Namespace, tmpdir: str) -> TapProcess:
    """The tap of `run`, started now when it can take its state later (see `tap_process`),
    from the pipeline's state hint when there is one (`state_hint`).

    Raises `ValueError` when the files for `--deletes` cannot be prepared, `TapStartError` when
    the command cannot be started.
    """
    default = not args.tap_command
    command = default_tap_command() if default else shlex.split(args.tap_command)
    config, catalog = args.config, args.catalog
    if args.deletes != "off":  # the tap's deletion mode: FULL_TABLE + ACTIVATE_VERSION
        from dlt_bridge.deletes import tap_files_for_deletes

        try:
            config, catalog = tap_files_for_deletes(command, config, catalog, tmpdir)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"--deletes {args.deletes}: could not prepare the tap: {exc}") from exc
    command += ["--config", config] + (["--catalog", catalog] if catalog else [])
    hint = read_hint(args, DEFAULT_PIPELINE_NAME) if default else (False, None)
    return TapProcess(command, tmpdir, state_on_stdin=default, hint=hint)


class EarlyTap:
    """The tap of a `run` command line, started before the bridge imports dlt (see `main`)."""

    def __init__(self, flags: argparse.Namespace) -> None:
        self.flags = flags
        self._tmpdir = tempfile.TemporaryDirectory(prefix="dlt-bridge-")
        self.tap: TapProcess | None = None
        self.error: str | None = None
        try:
            self.tap = _start_tap(flags, self._tmpdir.name)
        except (ValueError, TapStartError) as exc:
            self.error = str(exc)

    def matches(self, args: argparse.Namespace) -> bool:
        keys = ("config", "catalog", "tap_command", "deletes", *KEY_FLAGS)
        return all(getattr(args, k, None) == getattr(self.flags, k, None) for k in keys)

    def close(self) -> None:
        if self.tap is not None:
            self.tap.stop()
        self._tmpdir.cleanup()


def _load(args: argparse.Namespace, *, run_tap: bool, early: EarlyTap | None = None) -> int:
    options = options_from_args(args)
    if not run_tap:
        return _load_with(args, options, None)
    if early is None or not early.matches(args):
        if early is not None:  # read differently by the full parser: start the tap again
            early.close()
        early = EarlyTap(args)
    try:
        if early.error is not None:
            log.error("%s", early.error)
            return EXIT_USAGE
        return _load_with(args, options, early.tap)
    finally:
        early.close()


def _load_with(args: argparse.Namespace, options: Any, tap: TapProcess | None) -> int:
    from analytics_dlt.pipeline import create_pipeline, one_connection

    try:
        pipeline = create_pipeline(options)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    with one_connection(pipeline, options.duckdb_file) as pipeline:
        return _load_into(args, options, tap, pipeline)


def _load_into(
    args: argparse.Namespace, options: Any, tap: TapProcess | None, pipeline: Any
) -> int:
    from analytics_dlt.pipeline import prepare, source_name_for
    from dlt_bridge.state import stored_singer_state

    try:
        prepare(pipeline, options.on_pending)
    except Exception as exc:
        log.error(
            "could not finish the load packages left by an earlier failed run: %s\n"
            "Fix the destination and run again, or discard them with --on-pending abort.",
            _describe(exc),
        )
        return EXIT_LOAD_FAILED

    source_name = source_name_for(options)
    if tap is not None:
        try:
            tap.start_from(stored_singer_state(pipeline, source_name))
        except TapStartError as exc:
            log.error("%s", exc)
            return EXIT_USAGE
    # imported once the tap has its state: the tap need not wait for these modules
    from dlt_bridge.loader import SingerLoader, format_summary
    from dlt_bridge.messages import SingerReader

    proc: subprocess.Popen[bytes] | None = None
    source: Any
    on_input_end: Callable[[], None] | None = None
    if tap is not None:
        assert tap.proc is not None
        proc = tap.proc
        source = tap.stdout

        def tap_failed() -> bool:
            return proc.wait() != 0

        if args.deletes != "off":
            from dlt_bridge.deletes import TapFailedError

            def tap_must_succeed() -> None:  # a failed scan must not delete: commit nothing
                if proc.wait() != 0:
                    raise TapFailedError(proc.returncode)

            on_input_end = tap_must_succeed

        reader = SingerReader(source, on_truncated_tail=tap_failed)
        on_state = None
    else:
        source = open(args.input, "rb") if args.input else sys.stdin.buffer  # noqa: SIM115
        reader = SingerReader(source)

        def on_state(value: Any) -> None:
            _print_state(sys.stdout, value)

    loader = SingerLoader(
        pipeline,
        options,
        on_state_committed=on_state,
        deletes=args.deletes,
        on_input_end=on_input_end,
    )
    try:
        summary = loader.load(reader)
    except BaseException as exc:
        if tap is not None:
            tap.stop()
        input_error = _find_input_error(exc)
        if input_error is not None:
            committed = loader.summary.load_ids
            if committed:
                log.error(
                    "bad input: %s; the segments before it were committed (load ids %s, their "
                    "STATE printed), nothing after them was",
                    input_error,
                    ", ".join(committed),
                )
            else:
                log.error("bad input, nothing of this run was committed: %s", input_error)
            return EXIT_BAD_INPUT
        from dlt_bridge.deletes import TapFailedError

        if (failed := find_error(exc, TapFailedError)) is not None:
            log.error("%s; with --deletes nothing of this run was committed", failed)
            return EXIT_TAP_FAILED
        if isinstance(exc, KeyboardInterrupt):
            log.error("interrupted")
            return 130
        if not isinstance(exc, Exception):
            raise
        log.error("load failed, no state committed for the data not loaded: %s", _describe(exc))
        return EXIT_LOAD_FAILED
    finally:
        if args.command == "load" and args.input:
            source.close()
    if tap is not None and tap.state_on_stdin:  # the next run's tap starts from it at once
        committed = stored_singer_state(pipeline, source_name)
        if not (tap.guessed and same_state(tap.guess, committed)):  # else the hint holds it
            write_hint(args, DEFAULT_PIPELINE_NAME, committed)
    for line in format_summary(summary).splitlines():
        log.info("%s", line)
    if reader.skipped_unknown:
        log.info("skipped %d message(s) of unknown type", reader.skipped_unknown)
    if proc is not None:
        assert proc.stdout is not None
        proc.stdout.close()
        code = proc.wait()
        if code != 0:
            log.error(
                "the tap exited with code %s; the %s record(s) it sent were loaded with the last"
                " STATE it sent (a Singer state only covers records already sent)",
                code,
                f"{summary.records:,}",
            )
            return EXIT_TAP_FAILED
    return EXIT_OK


def _show_state(args: argparse.Namespace) -> int:
    from analytics_dlt.pipeline import create_pipeline, source_name_for
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
    _print_state(sys.stdout, destination_singer_state(pipeline, source_name_for(options)))
    return EXIT_OK


def console_main() -> None:
    """The `dlt-bridge` command: `main`, then exit without Python's interpreter teardown.

    By then everything is committed, the tap has exited and the destination is closed; what is
    left is finalizing the modules of dlt, pyarrow and DuckDB, measured at 0.3-0.8 s, a large
    share of a small run. Logging and the standard streams are flushed first. Under a profiler,
    a coverage tracer or a debugger (`sys.getprofile()`/`sys.gettrace()`) it exits normally, so
    they can write their results at exit.
    """
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)
    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: nothing more can be said
        code = code or 1
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # `run`: the tap starts first, so its start-up overlaps the bridge's (dlt's import, the
    # destination's state); it waits for that state on its stdin (`dlt_bridge.tap_process`)
    flags = tap_flags(arguments)
    early = EarlyTap(flags) if flags is not None else None
    try:
        return _main(arguments, early)
    finally:
        if early is not None:
            early.close()


def _main(argv: list[str], early: EarlyTap | None) -> int:
    from analytics_dlt import defaults

    # before anything uses dlt: dlt reads its telemetry setting once per process
    defaults.install()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = _logging_to_stderr(args.log_level)
    notice = ArrowJsonNotice()
    logging.getLogger("dlt").addFilter(notice)
    try:
        started = time.monotonic()
        if args.command == "state" and args.environment:
            from dlt_bridge.environment_state import show_environment_states

            return show_environment_states(args)
        if getattr(args, "environment", None):  # run/native --environment: one run per account
            from dlt_bridge.environments import run_environments

            return run_environments(args)
        if args.command == "state":
            return _show_state(args)
        if args.command == "native":
            from analytics_source.cli import run_native

            return run_native(args)
        code = _load(args, run_tap=args.command == "run", early=early)
        log.debug("finished in %.1f s with exit code %d", time.monotonic() - started, code)
        return code
    finally:
        logging.getLogger("dlt").removeFilter(notice)
        logging.getLogger("dlt_bridge").removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
