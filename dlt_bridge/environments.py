"""`dlt-bridge run|native --environment NAME`: several accounts of the API, each on its own.

Plans and sequences only: per environment of the environments file (`analytics_dlt.environments`)
it builds the arguments of one ordinary `run` (`run.load_command`) or `native` (`run_native`) and
calls it, in a place of its own: pipeline `analytics_<name>`; on DuckDB the file
`analytics_<name>.duckdb` (dataset `analytics`), elsewhere the dataset `analytics_<name>`. All
checks run before the first environment (exit 2, nothing run); a failing environment is reported
in one line and the next runs. Keys go over explicitly (a private temporary tap config, or
`api_key=`), never through `os.environ`, and are never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analytics_api.redact import redact
from analytics_dlt.environments import (
    DATASET_NAME,
    OPTIONAL_FIELDS,
    Environment,
    EnvironmentsError,
    environments_path,
    load_environments,
    select,
)
from analytics_dlt.guard import EXIT_BUSY, exclusive

log = logging.getLogger("dlt_bridge")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
ALL = "all"
OPTIONS = tuple(name for name in OPTIONAL_FIELDS if name not in ("deletes", "history"))
"""Environment fields that are also tap settings and `native` flags of the same name."""
_DUCKDB = "duckdb"


@dataclass
class Plan:
    """One environment's run: its key and the arguments of an ordinary `run` or `native`."""

    environment: Environment
    api_key: str
    args: argparse.Namespace
    destination: str
    location: str = ""
    """The DuckDB file (DuckDB only)."""
    tap_config: dict[str, Any] = field(default_factory=dict)
    """`run` only: the tap's settings, the key excepted (added in a private temporary file)."""


@dataclass
class Outcome:
    """What became of one environment."""

    plan: Plan
    status: str  # ok, failed, busy, not run
    exit_code: int | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def name(self) -> str:
        return self.plan.environment.name

    def as_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "environment": self.name,
            "status": self.status,
            "exit_code": self.exit_code,
            "pipeline_name": plan.args.pipeline_name,
            "destination": plan.destination,
            "dataset_name": plan.args.dataset_name,
            "location": plan.location,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def run_environments(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Plan every selected environment, then run them one after another; see the module doc."""
    environ = os.environ if environ is None else environ
    try:
        plans = plan_runs(args, environ)
    except EnvironmentsError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    outcomes: list[Outcome] = []
    for plan in plans:
        if outcomes and outcomes[-1].exit_code == EXIT_INTERRUPTED:
            outcomes.append(Outcome(plan, "not run"))
            continue
        outcome = run_plan(plan)
        outcomes.append(outcome)
        if outcome.status == "failed":
            log.error(
                "environment '%s' failed (exit %s, key from %s): %s",
                outcome.name,
                outcome.exit_code,
                plan.environment.api_key_env,
                outcome.error,
            )
    report(outcomes)
    failed = [o.exit_code or 1 for o in outcomes if o.status == "failed"]
    busy = [EXIT_BUSY for o in outcomes if o.status == "busy"]
    return EXIT_INTERRUPTED if EXIT_INTERRUPTED in failed else (failed or busy or [0])[0]


def plan_runs(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Plan]:
    """Every check that needs no API call; raises `EnvironmentsError` listing all problems."""
    problems = flag_conflicts(args)
    base_config: dict[str, Any] = {}
    if args.command == "run" and args.config:
        base_config, problem = read_tap_config(args.config)
        problems += [problem] if problem else []
    if problems:
        raise EnvironmentsError("\n".join(problems))
    path = environments_path(environ)
    environments = select(load_environments(path), selected_names(args.environment))
    explicit = explicit_fields(path)
    plans = []
    for env in environments:
        try:
            key = env.api_key(environ)
            plans.append(plan_one(args, env, key, explicit[env.name], base_config))
        except EnvironmentsError as exc:
            problems.append(str(exc))
    if problems:
        raise EnvironmentsError("\n".join(problems))
    return plans


def flag_conflicts(args: argparse.Namespace) -> list[str]:
    """Flags that would put several environments in one place, or override the file's URL."""
    from analytics_source.settings import DEFAULT_PIPELINE_NAME as NATIVE_PIPELINE
    from dlt_bridge.args import DEFAULT_PIPELINE_NAME as RUN_PIPELINE

    problems = []
    if args.command == "native" and args.base_url:
        problems.append(
            "--base-url conflicts with --environment: each environment's base_url comes from"
            " the environments file."
        )
    default = NATIVE_PIPELINE if args.command == "native" else RUN_PIPELINE
    if args.pipeline_name != default:
        problems.append(
            "--pipeline-name conflicts with --environment: each environment's pipeline is"
            " analytics_<name>."
        )
    if args.dataset_name:
        problems.append(
            "--dataset-name conflicts with --environment: the dataset is `analytics` in each"
            " environment's own DuckDB file, analytics_<name> on other destinations."
        )
    return problems


def read_tap_config(path: str) -> tuple[dict[str, Any], str | None]:
    """The `--config` file's settings, or a problem: with --environment it may not set the
    URL or the key (they are the environment's). Values are never quoted."""
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        return {}, f"--config {path}: cannot read it ({reason})."
    if not isinstance(config, dict):
        return {}, f"--config {path}: needs a JSON object of tap settings."
    if taken := [key for key in ("base_url", "api_key") if key in config]:
        return {}, (
            f"--config {path} sets {', '.join(taken)}, which conflicts with --environment: the"
            " base_url comes from the environments file and the key from each environment's"
            " api_key_env variable. Remove them from the file."
        )
    return config, None


def selected_names(values: Sequence[str] | None) -> list[str]:
    """The names asked for, once each; `all` anywhere means every environment."""
    names = list(dict.fromkeys(values or []))
    return [] if ALL in names else names


def explicit_fields(path: Path) -> dict[str, frozenset[str]]:
    """The fields each environment sets itself: only those override the command line.

    Read from the file again (`Environment` fills in defaults); it was checked as a whole by
    `load_environments` just before.
    """
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {entry["name"]: frozenset(entry) for entry in document["environments"]}


def plan_one(
    args: argparse.Namespace,
    env: Environment,
    api_key: str,
    explicit: frozenset[str],
    base_config: Mapping[str, Any],
) -> Plan:
    """The arguments of this environment's ordinary run: file settings win when set."""
    destination, dataset, location, _ = destination_for(args, env)
    own = {name: getattr(env, name) for name in OPTIONS if name in explicit}
    ns = argparse.Namespace(**vars(args))
    ns.environment = None
    ns.pipeline_name = env.pipeline_name
    ns.dataset_name = dataset
    ns.deletes = env.deletes if "deletes" in explicit else args.deletes
    ns.history = env.history if "history" in explicit else args.history
    plan = Plan(env, api_key, ns, destination, location)
    if args.command == "native":
        from analytics_source import settings_problems

        ns.base_url = env.base_url
        for name, value in own.items():
            setattr(ns, name, value)
        options = {name: getattr(ns, name) for name in OPTIONS}
        if problems := settings_problems(env.base_url, api_key, **options):
            raise EnvironmentsError(
                "\n".join(f"environment '{env.name}': {problem}" for problem in problems)
            )
    else:
        plan.tap_config = {**base_config, **own, "base_url": env.base_url}
    return plan


def destination_for(args: argparse.Namespace, env: Environment) -> tuple[str, str, str, Any]:
    """(destination name, dataset, DuckDB file, the pipeline), resolved as `create_pipeline`."""
    from analytics_dlt.pipeline import LoadOptions, create_pipeline, is_duckdb, location_of

    try:
        name = _destination_name(args.destination, env.pipeline_name, args.pipelines_dir)
        dataset = DATASET_NAME if name == _DUCKDB else env.server_dataset
        options = LoadOptions(
            pipeline_name=env.pipeline_name,
            destination=args.destination,
            dataset_name=dataset,
            pipelines_dir=args.pipelines_dir,
            loader_file_format=getattr(args, "loader_file_format", "auto"),
        )
        pipeline = create_pipeline(options)
    except Exception as exc:
        raise EnvironmentsError(f"environment '{env.name}': {exc}") from None
    if not is_duckdb(pipeline):
        return name, dataset, "", pipeline
    location = location_of(pipeline)
    if os.path.basename(location) != env.duckdb_file:
        raise EnvironmentsError(
            f"environment '{env.name}': dlt is configured to load DuckDB into {location}, a"
            f" file every environment would share; with --environment each one has its own,"
            f" {env.duckdb_file} in the working directory. Unset the DuckDB credentials"
            " (DESTINATION__DUCKDB__CREDENTIALS) or run from another directory."
        )
    return name, dataset, location, pipeline


def _destination_name(destination: str | None, pipeline_name: str, pipelines_dir: Any) -> str:
    """The flag, else dlt config / the pipeline's own (as `create_pipeline`), else duckdb."""
    import dlt
    from dlt.common.destination import Destination

    if destination:
        reference: Any = Destination.from_reference(destination)
        return str(reference.destination_name)
    kwargs = {"pipelines_dir": pipelines_dir} if pipelines_dir else {}
    configured = dlt.pipeline(pipeline_name=pipeline_name, **kwargs)
    found = configured.destination
    return str(found.destination_name) if found is not None else _DUCKDB


def run_plan(plan: Plan) -> Outcome:
    """Run one environment; its log lines carry its name, its first error becomes the report."""
    name = plan.environment.name
    prefix = _Prefix(name, plan.api_key)
    errors = _FirstError(prefix.prefix)
    bridge, source = logging.getLogger("dlt_bridge"), logging.getLogger("analytics_source")
    bridge.addHandler(errors)
    for logger in (bridge, source):
        logger.addFilter(prefix)
    started = time.monotonic()
    try:
        code = _run(plan)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an unexpected failure: the next environments still run
        text = redact(str(exc), plan.api_key).strip()
        log.error("unexpected failure: %s: %s", type(exc).__name__, text[:2000])
        code = 1
    finally:
        bridge.removeHandler(errors)
        for logger in (bridge, source):
            logger.removeFilter(prefix)
    seconds = time.monotonic() - started
    if code == 0:
        return Outcome(plan, "ok", 0, seconds)
    error = redact(errors.message or f"exit code {code}", plan.api_key)
    status = "busy" if code == EXIT_BUSY else "failed"  # busy: another run had it, nothing done
    return Outcome(plan, status, code, seconds, error)


def _run(plan: Plan) -> int:
    """The environment's run with its pipeline held throughout (`analytics_dlt.guard`): when
    another run of the environment is loading, this one does nothing (EXIT_BUSY)."""
    return exclusive(
        lambda guard: _run_command(plan),
        label=f"environment '{plan.environment.name}'",
        pipeline_name=plan.args.pipeline_name,
        pipelines_dir=plan.args.pipelines_dir,
        wait=getattr(plan.args, "wait_if_busy", 0.0),
        logger=log,
    )


def _run_command(plan: Plan) -> int:
    if plan.args.command == "native":
        from analytics_source.cli import run_native

        return run_native(plan.args, api_key=plan.api_key)
    from dlt_bridge.args import options_from_args
    from dlt_bridge.run import load_command

    with tempfile.TemporaryDirectory(prefix="dlt-bridge-env-") as tmpdir:  # mode 0700
        path = os.path.join(tmpdir, "tap-config.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**plan.tap_config, "api_key": plan.api_key}, fh)
        args = argparse.Namespace(**vars(plan.args))
        args.config = path
        return load_command(args, options_from_args(args), run_tap=True)


def report(outcomes: list[Outcome]) -> None:
    """One line per environment on stderr, and one JSON object per environment on stdout."""
    failed = sum(o.status == "failed" for o in outcomes)
    busy = sum(o.status == "busy" for o in outcomes)
    ran = sum(o.status not in ("not run", "busy") for o in outcomes)
    also = f", {busy} busy (another run was loading them)" if busy else ""
    not_run = len(outcomes) - ran - busy
    log.info("environments: %d run, %d failed, %d not run%s", ran, failed, not_run, also)
    width = max((len(o.name) for o in outcomes), default=0)
    for o in outcomes:
        status = o.status if o.status != "failed" else f"failed (exit {o.exit_code})"
        target = o.plan.location or f"dataset {o.plan.args.dataset_name}"
        line = f"{o.name:<{width}}  {status:<15} {o.seconds:6.1f} s  {o.plan.destination} {target}"
        log.info("  %s", line)
    for o in outcomes:
        sys.stdout.write(json.dumps(o.as_json()) + "\n")
    sys.stdout.flush()


class _FirstError(logging.Handler):
    """Keeps the first error an environment's run logs, on one line."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.ERROR)
        self.prefix = prefix
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.message is None:
            text = " ".join(record.getMessage().removeprefix(self.prefix).split())
            self.message = (text[:500] + " ..." if len(text) > 500 else text) or None


class _Prefix(logging.Filter):
    """While an environment runs: `[<name>]` in front of every log line, and its key masked."""

    def __init__(self, name: str, secret: str) -> None:
        super().__init__()
        self.prefix = f"[{name}] "
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed call: leave it to logging's own error handling
            return True
        if not text.startswith(self.prefix):
            record.msg, record.args = self.prefix + redact(text, self.secret), None
        return True
