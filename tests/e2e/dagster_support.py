"""Helpers for tests/e2e/test_dagster.py: find Dagster, run its CLI in a workspace, read tables.

Dagster lives in its own virtualenv (`make dagster`: `.venv-dagster`, `pip install -e
'.[dagster]'`), as Meltano does. `dagster_bin()` finds it like `test_meltano.meltano_bin()`
finds Meltano, but fails instead of skipping: these tests never skip.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from tests.e2e import bridge_support, test_meltano
from tests.support import CommandResult, run_command

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds for one Dagster command; a materialization takes ~7 s here

# Variables of the developer's shell that would leak into the code location under test.
_FOREIGN_PREFIXES = (
    "ANALYTICS_",
    "DAGSTER_",
    "DLT_",
    "DESTINATION__",
    "SOURCES__",
    "RUNTIME__",
    "NORMALIZE__",
    "LOAD__",
    "TAP_ANALYTICS_",
)
_FOREIGN_NAMES = ("VIRTUAL_ENV", "PYTHONPATH", "DATASET_NAME", "DESTINATION_TYPE")


def dagster_bin() -> Path:
    """`$DAGSTER_BIN`, else `.venv-dagster/bin/dagster`; fails (never skips) without either."""
    configured = os.environ.get("DAGSTER_BIN")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO / ".venv-dagster" / "bin" / "dagster")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Dagster not found: set DAGSTER_BIN or run `make dagster` (python3 -m venv .venv-dagster"
        " && .venv-dagster/bin/pip install -e '.[dagster]'); `make test-all` creates it",
        pytrace=False,
    )


Result = CommandResult


@dataclass
class Environment:
    """One environment of the file under test: its name, its fake API and its key variable."""

    name: str
    api: Any
    options: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    """The key put in the child's environment; None: the fake's own token."""

    @property
    def key_variable(self) -> str:
        return f"ANALYTICS_{self.name.upper()}_API_KEY"

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.api.url,
            "api_key_env": self.key_variable,
            # fail fast when the fake is made to fail; the tests are not about HTTP retries
            "max_retries": 0,
            "backoff_factor": 0,
            **self.options,
        }


@dataclass
class Workspace:
    """A temporary Dagster home, working directory and environments file, and the CLI."""

    root: Path
    dagster: Path
    environments: list[Environment]
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", "utf-8")
        self.write_file()

    @property
    def home(self) -> Path:
        return self.root / "dagster-home"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def environments_file(self) -> Path:
        return self.root / "environments.yml"

    def write_file(self) -> None:
        document = {"environments": [e.entry() for e in self.environments]}
        self.environments_file.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")

    def env(self, *, keys: bool = True, **overrides: str | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            DLT_DATA_DIR=str(self.root / "dlt"),
            ANALYTICS_ENVIRONMENTS=str(self.environments_file),
            ANALYTICS_RETRY_DELAY="0",
            RUNTIME__DLTHUB_TELEMETRY="false",
            NO_COLOR="1",
        )
        if keys:  # each environment's key only ever in the child's environment
            for e in self.environments:
                env[e.key_variable] = e.key if e.key is not None else e.api.token
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(self, *args: str, **kw: Any) -> Result:
        """`dagster <args>` in the working directory; `label=` records its time."""
        return self.execute([str(self.dagster), *args], **kw)

    def execute(
        self, argv: list[str], *, label: str | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        """A program, stdout and stderr together, with `env` (default `self.env()`)."""
        result = run_command(
            argv,
            cwd=self.workdir,
            env=env if env is not None else self.env(),
            timeout=TIMEOUT,
            shown=[Path(argv[0]).name, *argv[1:]],
        )
        if label:
            self.timings[label] = result.seconds
        return result

    def start(
        self, *args: str, env: Mapping[str, str] | None = None, program: str = "dagster"
    ) -> Started:
        """`dagster <args>` (or another program of Dagster's, e.g. `dagster-daemon`) in the
        background; `.wait()` gives its result. Its output goes to a file, so a test that does
        not read it yet never blocks the process on a full pipe."""
        argv = [str(self.dagster.parent / program), *args]
        output = self.root / f"output-{len(list(self.root.glob('output-*')))}.log"
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=dict(env if env is not None else self.env()),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        return Started([program, *args], proc, output, time.monotonic())

    def materialize_args(self, partition: str) -> list[str]:
        select = ["asset", "materialize", "-m", "analytics_dagster", "--select", "*"]
        return [*select, "--partition", partition]

    def validate(self, **kw: Any) -> Result:
        return self.run("definitions", "validate", "-m", "analytics_dagster", **kw)

    def materialize(self, partition: str, **kw: Any) -> Result:
        return self.run(*self.materialize_args(partition), **kw)

    def python(self, code: str, **kw: Any) -> Result:
        """`python -c code` with Dagster's interpreter (next to the `dagster` script)."""
        return self.execute([str(self.dagster.parent / "python"), "-c", code], **kw)

    def duckdb_file(self, name: str) -> Path:
        return self.workdir / f"analytics_{name}.duckdb"

    def duckdb_files(self) -> list[str]:
        return sorted(p.name for p in self.workdir.glob("*.duckdb"))


@dataclass
class Started:
    """A command running in the background (`Workspace.start`)."""

    args: list[str]
    proc: subprocess.Popen[bytes]
    output: Path
    started: float

    def stop(self) -> Result:
        """Ask it to end (SIGTERM), then its result."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait()

    def wait(self) -> Result:
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        seconds = time.monotonic() - self.started
        text = self.output.read_text("utf-8", errors="replace")
        return Result(self.args, self.proc.returncode, text, seconds)


@contextlib.contextmanager
def reading(workspace: Workspace, name: str) -> Iterator[Path]:
    """Point the DuckDB helpers of test_meltano and bridge_support at one environment's file.

    Those helpers read a fixed file name under the folder they are given
    (`output/tap_analytics.duckdb`, `tap_analytics.duckdb`); here each environment has its own
    `analytics_<name>.duckdb`, so the name is swapped for the duration of the block. Yields
    the folder to pass them.
    """
    path = workspace.duckdb_file(name)
    assert path.is_file(), f"{path.name} was not created"
    with (
        mock.patch.object(test_meltano, "DUCKDB_FILE", path.name),
        mock.patch.object(bridge_support, "DB_FILE", path.name),
    ):
        yield workspace.workdir


def tables_of(workspace: Workspace, name: str) -> dict[str, list[dict[str, Any]]]:
    """Every stream's rows in one environment's file (test_meltano.duckdb_tables)."""
    with reading(workspace, name) as folder:
        return test_meltano.duckdb_tables(folder)


def assert_equals_dump(workspace: Workspace, name: str, dump: dict[str, list[Any]]) -> None:
    """One environment's tables equal a dump: counts, keys and values, all eight streams."""
    with reading(workspace, name) as folder:
        test_meltano.assert_duckdb_equals_dump(folder, dump)


def rows_of_last_load(workspace: Workspace, name: str) -> dict[str, list[str]]:
    """Primary keys written by the newest completed load of one environment, per stream."""
    with reading(workspace, name) as folder:
        return test_meltano._duckdb_rows_of_last_load(folder)
