"""`dlt-bridge load` and `dlt-bridge run`: one load of Singer messages, step by step.

1. `tap_config_problems` (run): the tap's config file is read and checked before anything
   else, so bad configuration exits 2 with no destination opened and no request sent.
2. The run guard (`analytics_dlt.guard.exclusive`): another run of the pipeline loading stops
   this one at once (exit 5) or, with `--wait-if-busy`, after waiting for it.
3. `create_pipeline`, and the first line of the run says where it loads; then `prepare`:
   packages a failed run left behind, the destination's state, and a dataset of the other
   engine refused.
4. `start_tap` (run): the tap, from the state stored in the destination.
5. `SingerLoader.load` (`_load`): the messages, committed with the state that covers them; the
   summary of a run that succeeded, or one line saying why it failed (never "loaded").
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
import tempfile
from typing import IO, Any

import orjson
from dlt.pipeline.exceptions import PipelineStepFailed

from analytics_api.errors import find_error
from analytics_dlt.guard import RunGuard, exclusive
from analytics_dlt.pipeline import (
    NATIVE_SCHEMA,
    LoadOptions,
    MixedEnginesError,
    create_pipeline,
    one_connection,
    prepare,
    refuse_other_engine,
    where_it_loads,
)
from dlt_bridge.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_TAP_FAILED,
    EXIT_USAGE,
)
from dlt_bridge.preflight import tap_config_problems
from dlt_bridge.tap_process import TapProcess, TapStartError

log = logging.getLogger("dlt_bridge")


def print_state(out: IO[str], value: Any) -> None:
    out.write(orjson.dumps(value).decode("utf-8") + "\n")
    out.flush()


def describe(exc: BaseException) -> str:
    """An exception on one line of at most 500 characters (its root cause when wrapped)."""
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = " ".join((str(root).strip() or type(root).__name__).split())
    return text if len(text) <= 500 else text[:500] + " ..."


def default_tap_command() -> list[str]:
    """`python -m tap_analytics` with this interpreter (the tap is installed with the bridge)."""
    return [sys.executable, "-m", "tap_analytics"]


def load_command(args: argparse.Namespace, options: LoadOptions, *, run_tap: bool) -> int:
    """`run` (with the tap) or `load` (messages on stdin or `--input`); the exit code."""
    if run_tap and (problems := tap_config_problems(args.config, ours=not args.tap_command)):
        for problem in problems:
            log.error("%s", problem)
        return EXIT_USAGE
    return exclusive(  # one run of the pipeline at a time; another one: EXIT_BUSY
        lambda guard: _load_command(args, options, guard, run_tap=run_tap),
        pipeline_name=options.pipeline_name,
        pipelines_dir=options.pipelines_dir,
        wait=getattr(args, "wait_if_busy", 0.0),
        logger=log,
    )


def _load_command(
    args: argparse.Namespace, options: LoadOptions, guard: RunGuard, *, run_tap: bool
) -> int:
    try:
        pipeline = create_pipeline(options)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    guard.hold_destination(pipeline)
    log.info("loading into %s", where_it_loads(pipeline, options))
    with contextlib.ExitStack() as stack:
        try:
            pipeline = stack.enter_context(one_connection(pipeline, options))
            prepare(pipeline, options.on_pending)
            refuse_other_engine(pipeline, NATIVE_SCHEMA)
        except MixedEnginesError as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        except Exception as exc:
            log.debug("the destination could not be prepared", exc_info=True)
            log.error(
                "cannot use the destination (%s): %s\nFix it (path, credentials, server) and run"
                " again; load packages a failed run left can be dropped with --on-pending abort.",
                where_it_loads(pipeline, options),
                describe(exc),
            )
            return EXIT_LOAD_FAILED
        with tempfile.TemporaryDirectory(prefix="dlt-bridge-") as workdir:
            if not run_tap:
                return _load_messages(args, options, pipeline)
            try:
                tap = start_tap(args, options, pipeline, workdir)
            except (TapStartError, ValueError) as exc:
                log.error("%s", exc)
                return EXIT_USAGE
            try:
                return _load_tap_output(args, options, pipeline, tap)
            finally:
                tap.stop()


def start_tap(
    args: argparse.Namespace, options: LoadOptions, pipeline: Any, workdir: str
) -> TapProcess:
    """The tap of `run`, from the Singer state stored in the destination (none: a full sync)."""
    from analytics_dlt.pipeline import source_name_for
    from dlt_bridge.state import stored_singer_state

    command = shlex.split(args.tap_command) if args.tap_command else default_tap_command()
    config, catalog = args.config, args.catalog
    if args.deletes != "off":  # the tap's deletion mode: FULL_TABLE + ACTIVATE_VERSION
        from dlt_bridge.deletes import tap_files_for_deletes

        try:
            config, catalog = tap_files_for_deletes(command, config, catalog, workdir)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"--deletes {args.deletes}: could not prepare the tap: {exc}") from exc
    command += ["--config", config] + (["--catalog", catalog] if catalog else [])
    state = stored_singer_state(pipeline, source_name_for(options))
    if state is None:
        log.info("no state stored in the destination: the tap starts a full sync")
    else:
        log.debug("starting the tap from the state stored in the destination")
    return TapProcess(command, workdir, state, verbose=log.isEnabledFor(logging.DEBUG))


def _load_messages(args: argparse.Namespace, options: LoadOptions, pipeline: Any) -> int:
    """`load`: messages from `--input` or stdin; each committed STATE printed on stdout."""
    from dlt_bridge.messages import SingerReader

    source = open(args.input, "rb") if args.input else sys.stdin.buffer  # noqa: SIM115
    try:
        loader = _loader(args, options, pipeline, on_input_end=None)
        loader.on_state_committed = lambda value: print_state(sys.stdout, value)
        return _load(loader, SingerReader(source), tap=None)
    finally:
        if args.input:
            source.close()


def _load_tap_output(
    args: argparse.Namespace, options: LoadOptions, pipeline: Any, tap: TapProcess
) -> int:
    """`run`: the tap's output; a tap that fails decides the exit code (see `report`)."""
    from dlt_bridge.deletes import TapFailedError
    from dlt_bridge.messages import SingerReader

    def tap_must_succeed() -> None:  # with --deletes a failed scan must not delete: commit nothing
        if tap.wait() != 0:
            raise TapFailedError(tap.proc.returncode, tap.last_error)

    on_input_end = tap_must_succeed if args.deletes != "off" else None
    loader = _loader(args, options, pipeline, on_input_end=on_input_end)
    reader = SingerReader(tap.stdout, on_truncated_tail=lambda: tap.wait() != 0)
    return _load(loader, reader, tap=tap)


def _loader(
    args: argparse.Namespace, options: LoadOptions, pipeline: Any, on_input_end: Any
) -> Any:
    from dlt_bridge.loader import SingerLoader

    return SingerLoader(
        pipeline,
        options,
        deletes=args.deletes,
        on_input_end=on_input_end,
        history=getattr(args, "history", False),
    )


def _load(loader: Any, reader: Any, tap: TapProcess | None) -> int:
    """Run the loader over `reader`; map every failure to its exit code and one clear line."""
    from dlt_bridge.deletes import TapFailedError
    from dlt_bridge.messages import BridgeInputError

    try:
        summary = loader.load(reader)
    except BaseException as exc:
        if tap is not None:
            tap.stop()
        if (input_error := find_error(exc, BridgeInputError)) is not None:
            committed = loader.summary.load_ids
            if committed:
                log.error(
                    "bad input: %s; the segments before it were committed (load ids %s, their"
                    " STATE printed), nothing after them was",
                    input_error,
                    ", ".join(committed),
                )
            else:
                log.error("bad input, nothing of this run was committed: %s", input_error)
            return EXIT_BAD_INPUT
        if (failed := find_error(exc, TapFailedError)) is not None:
            log.error("%s; with --deletes nothing of this run was committed", failed)
            return EXIT_TAP_FAILED
        if isinstance(exc, KeyboardInterrupt):
            log.error("interrupted; nothing after the last committed state was kept")
            return EXIT_INTERRUPTED
        if not isinstance(exc, Exception):
            raise
        log.debug("load failed", exc_info=True)
        step = getattr(find_error(exc, PipelineStepFailed), "step", None)
        log.error(
            "load failed%s, no state committed for the data not loaded: %s",
            f" at the {step} step" if step else "",
            describe(exc),
        )
        return EXIT_LOAD_FAILED
    if reader.skipped_unknown:
        log.info("skipped %d message(s) of unknown type", reader.skipped_unknown)
    if tap is not None and tap.wait() != 0:
        return _tap_failed(tap, summary)
    from dlt_bridge.summary import format_summary

    for line in format_summary(summary).splitlines():
        log.info("%s", line)
    return EXIT_OK


def _tap_failed(tap: TapProcess, summary: Any) -> int:
    """The tap exited non-zero: say why, and what was kept (records sent with their state)."""
    cause = (tap.last_error or "see the tap's messages above").rstrip(". ")
    kept = (
        f"; the {summary.records:,} record(s) it sent before failing were kept with the state"
        " that covers them"
        if summary.records
        else "; nothing was loaded"
    )
    log.error("the tap failed (exit %s): %s%s", tap.proc.returncode, cause, kept)
    return EXIT_TAP_FAILED
