"""One run per pipeline at a time (analytics_dlt.guard), across processes and machines.

Runs are synchronised by events, never by time: `HeldAPI` holds every request to a fake API
until the test lets it go, so a first run is known to hold its guard (it has reached the API)
while a second one starts; the second run's outcome (stopped, or its line saying it waits) is
read before the first is let go. A holder process says `HELD` on its stdout once it holds.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_dlt.guard import RunBusyError, RunGuard
from fake_api import DatasetConfig
from tests.e2e import bridge_support, test_bridge_environments
from tests.e2e.bridge_support import (
    assert_tables_equal_dump,
    common_args,
    load_ids,
    run_bridge_process,
    stored_state,
    write_tap_config,
)
from tests.e2e.test_bridge_environments import (
    KEY_A,
    KEY_B,
    bridge,
    entry,
    report,
    statuses,
    write_environments,
)
from tests.e2e.test_bridge_postgres import DATASET, Target
from tests.postgres import PostgresCluster
from tests.support import all_dumps

pytestmark = [pytest.mark.e2e]

fakes = test_bridge_environments.fakes  # the fixture: two accounts, different data and keys

HOLD_TIMEOUT = 300.0
"""Seconds a held request waits at most (a test that fails before letting go ends anyway)."""


class HeldAPI:
    """Holds every API request to an in-process fake until `let_go()`; `reached` is set by the
    first one. Control requests (`/_fake/...`) pass."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.reached = threading.Event()
        self._open = threading.Event()
        self._respond = api.server.respond

    def __enter__(self) -> HeldAPI:
        def respond(method: bytes, target: bytes, headers: Any, body: bytes) -> Any:
            if not target.startswith(b"/_fake/") and not self._open.is_set():
                self.reached.set()
                self._open.wait(HOLD_TIMEOUT)
            return self._respond(method, target, headers, body)

        self.api.server.respond = respond  # the server's handler calls `app.respond(...)`
        return self

    def wait_reached(self, proc: subprocess.Popen[Any] | None = None) -> None:
        """Until the first request arrives; fails if `proc` (the first run) ends before."""
        deadline = time.monotonic() + HOLD_TIMEOUT
        while not self.reached.wait(0.05):
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"the first run ended (exit {proc.returncode}) before the API")
            assert time.monotonic() < deadline, "the first run never reached the API"

    def let_go(self) -> None:
        self._open.set()

    def __exit__(self, *exc: object) -> None:
        self.let_go()
        self.api.server.respond = self._respond


HOLDER = textwrap.dedent(
    """
    import sys
    import dlt
    from analytics_dlt.guard import RunGuard

    name, folder, destination, credentials, dataset = sys.argv[1:6]
    factory = getattr(dlt.destinations, destination)
    pipeline = dlt.pipeline(
        pipeline_name=name, pipelines_dir=folder, destination=factory(credentials=credentials),
        dataset_name=dataset,
    )
    guard = RunGuard(f"pipeline '{name}'", by="the holder")
    guard.hold_pipeline(name, folder)
    guard.hold_destination(pipeline)
    print("HELD", flush=True)
    sys.stdin.read()  # until the test closes stdin, or kills this process
    """
)


class HolderProcess:
    """A process holding a pipeline's guard (`RunGuard.hold_pipeline` and `hold_destination`)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "HELD":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=60)
            pytest.fail(f"the holder did not take the guard: {line!r}\n{err[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL


@pytest.fixture
def holders() -> Iterator[list[HolderProcess]]:
    started: list[HolderProcess] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


def pipeline(name: str, folder: Path, destination: Any, dataset: str) -> Any:
    return dlt.pipeline(
        pipeline_name=name, pipelines_dir=str(folder), destination=destination, dataset_name=dataset
    )


def take(name: str, folder: Path, made: Any, wait: float = 0) -> None:
    """Take the guard of `made` (in `folder`) and let go at once; RunBusyError when held."""
    with RunGuard(f"pipeline '{name}'", wait=wait) as guard:
        guard.hold_pipeline(name, str(folder))
        guard.hold_destination(made)


def test_a_killed_run_leaves_nothing_that_blocks_the_next(
    tmp_path: Path, holders: list[HolderProcess]
) -> None:
    database = tmp_path / "x.duckdb"
    holder = HolderProcess("x", str(tmp_path / "a"), "duckdb", str(database), "analytics")
    holders.append(holder)
    made = pipeline("x", tmp_path / "a", dlt.destinations.duckdb(str(database)), "analytics")
    with pytest.raises(RunBusyError) as caught:
        take("x", tmp_path / "a", made)
    pid, host = holder.proc.pid, socket.gethostname()
    assert f"(the holder, pid {pid} on host {host}); this run did nothing" in str(caught.value)
    # another folder, same DuckDB file: held by the file's lock
    other = pipeline("y", tmp_path / "b", dlt.destinations.duckdb(str(database)), "analytics")
    with pytest.raises(RunBusyError):
        take("y", tmp_path / "b", other)

    holder.kill()  # no clean-up ran: the kernel released its locks
    take("x", tmp_path / "a", made)
    take("y", tmp_path / "b", other)


def test_postgres_holds_one_dataset_across_dlt_folders_until_the_session_ends(
    postgres: PostgresCluster, tmp_path: Path, holders: list[HolderProcess]
) -> None:
    """Two machines: separate dlt folders, one schema. The advisory lock holds the second."""
    dsn = postgres.dsn(postgres.create_database())
    holder = HolderProcess("analytics_a", str(tmp_path / "one"), "postgres", dsn, "analytics_a")
    holders.append(holder)
    same = pipeline("analytics_a", tmp_path / "two", dlt.destinations.postgres(dsn), "analytics_a")
    with pytest.raises(RunBusyError) as caught:
        take("analytics_a", tmp_path / "two", same)
    message = str(caught.value)
    # who holds it comes from the server: the lock session's application_name and start
    assert f"(the holder, pid {holder.proc.pid} on host {socket.gethostname()})" in message
    assert message.startswith("pipeline 'analytics_a' is already loading since ")

    other = pipeline("analytics_b", tmp_path / "two", dlt.destinations.postgres(dsn), "analytics_b")
    take("analytics_b", tmp_path / "two", other)  # another dataset: not held

    holder.kill()  # its session ends with its connection: the server frees the lock...
    take("analytics_a", tmp_path / "two", same, wait=60)  # ...once it has seen the socket close


# -- two `dlt-bridge run`s of one pipeline at once (a cron tick while a slow run still loads) --

SMALL = DatasetConfig(seed=41, applications=4, event_types=5, tokens=2, ingest_sources=2)
BUSY_LINE = re.compile(
    r"dlt-bridge ERROR pipeline '(\w+)' is already loading since \d\d:\d\d:\d\d \(pid (\d+) on"
    r" host \S+\); this run did nothing"
)


class BridgeProcess:
    """`python -m dlt_bridge <args>` started in the background; stderr read line by line."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlt_bridge", *args],
            cwd=workdir,
            env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, text: str) -> str:
        """Stderr lines until one holding `text` (fails if the process ends first)."""
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if text in line:
                return line
        pytest.fail(f"no line with {text!r} before the end:\n{''.join(self.lines)[-3000:]}")

    def finish(self) -> tuple[int, str]:
        _, rest = self.proc.communicate(timeout=HOLD_TIMEOUT)
        return self.proc.returncode, "".join(self.lines) + rest


def run_args(workdir: Path, api: Any, *extra: str) -> list[str]:
    config = write_tap_config(workdir, api)
    return ["run", "--config", str(config), *extra, *common_args(workdir)]


def test_a_second_run_while_one_loads_stops_at_once_with_exit_5(
    tmp_path: Path, fake_api_factory: Any
) -> None:
    api = fake_api_factory(SMALL)
    with HeldAPI(api) as held:
        first = BridgeProcess(tmp_path, run_args(tmp_path, api))
        held.wait_reached(first.proc)  # the first run holds the pipeline (it reached the API)
        second = run_bridge_process(tmp_path, run_args(tmp_path, api)[:3])
        held.let_go()
        code, first_err = first.finish()
    assert code == 0, first_err[-3000:]
    assert second.returncode == 5
    # one line, naming the pipeline and the first run; nothing else, no traceback
    (line,) = second.stderr.splitlines()
    match = BUSY_LINE.fullmatch(line)
    assert match and match.groups() == ("tap_analytics", str(first.proc.pid)), line
    assert_tables_equal_dump(tmp_path, all_dumps(api))
    assert len(load_ids(tmp_path)) == 1  # one load: the first run's, its state committed once
    assert stored_state(tmp_path) is not None
    assert "Traceback" not in first_err


def test_a_second_run_told_to_wait_says_so_and_runs_after_the_first(
    tmp_path: Path, fake_api_factory: Any
) -> None:
    api = fake_api_factory(SMALL)
    with HeldAPI(api) as held:
        first = BridgeProcess(tmp_path, run_args(tmp_path, api))
        held.wait_reached(first.proc)
        second = BridgeProcess(tmp_path, run_args(tmp_path, api, "--wait-if-busy", "300"))
        waiting = second.read_until("waiting up to")
        held.let_go()  # only once the second said it waits
        first_code, first_err = first.finish()
        second_code, second_err = second.finish()
    assert (first_code, second_code) == (0, 0), (first_err[-2000:], second_err[-2000:])
    assert re.search(
        rf"pipeline 'tap_analytics' is already loading since \d\d:\d\d:\d\d \(pid"
        rf" {first.proc.pid} on host \S+\); waiting up to 300 s for that run to finish",
        waiting,
    ), waiting
    assert "the other run finished after" in second_err
    assert "Traceback" not in first_err + second_err
    assert_tables_equal_dump(tmp_path, all_dumps(api))
    assert len(load_ids(tmp_path)) == 1  # nothing new for the second: the state moved once
    state = stored_state(tmp_path)
    assert state is not None and state.get("bookmarks"), state


def test_two_runs_from_separate_dlt_folders_on_one_postgres_schema(
    postgres: PostgresCluster, tmp_path: Path, fake_api_factory: Any
) -> None:
    """Two machines: each its own dlt folder, one schema. The second stops (exit 5) before it
    touches the schema; the first loads it exactly, once."""
    api = fake_api_factory(SMALL)
    one = Target(postgres, tmp_path / "one")
    two = copy.copy(one)  # the same database and schema, another working directory
    two.workdir = tmp_path / "two"
    for target in (one, two):
        target.workdir.mkdir()
    config = str(write_tap_config(tmp_path, api))
    with HeldAPI(api) as held:
        first = BridgeProcess(one.workdir, one.argv("run", "--config", config)[3:], one.env)
        held.wait_reached(first.proc)
        second = two.bridge("run", "--config", config)
        held.let_go()
        code, first_err = first.finish()
    assert code == 0, first_err[-3000:]
    assert second.returncode == 5, second.stderr[-3000:]
    (line,) = second.stderr.splitlines()
    assert BUSY_LINE.fullmatch(line), line
    assert f"(pid {first.proc.pid} on host" in line  # who holds it, as the server tells
    one.assert_tables_equal_dump(all_dumps(api))
    assert one.query(f"select count(*) from {DATASET}._dlt_loads") == [(1,)]


@pytest.mark.parametrize("command", ["run", "native"])
def test_a_busy_environment_is_reported_busy_and_the_others_run(
    command: str,
    tmp_path: Path,
    fakes: tuple[Any, Any],
    holders: list[HolderProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = fakes
    write_environments(tmp_path, entry("a", a, "KEY_A"), entry("b", b, "KEY_B"))
    database = tmp_path / "analytics_a.duckdb"
    holder = HolderProcess("analytics_a", str(tmp_path / "pl"), "duckdb", str(database), "x")
    holders.append(holder)
    result = bridge(
        tmp_path, command, "--environment", "all", keys={"KEY_A": KEY_A, "KEY_B": KEY_B}
    )
    assert result.returncode == 5, result.stderr[-3000:]
    assert statuses(result) == {"a": "busy", "b": "ok"}
    busy = (
        rf"environment 'a' is already loading since \d\d:\d\d:\d\d \(the holder, pid"
        rf" {holder.proc.pid} on host \S+\); this run did nothing"
    )
    assert re.fullmatch(busy, report(result)["a"]["error"]), report(result)["a"]
    assert re.search(rf"dlt-bridge ERROR \[a\] {busy}\n", result.stderr), result.stderr[-3000:]
    assert "environments: 1 run, 0 failed, 0 not run, 1 busy" in result.stderr
    assert "Traceback" not in result.stderr
    assert not database.exists()  # a's run stopped before its file was opened
    monkeypatch.setattr(bridge_support, "DB_FILE", "analytics_b.duckdb")
    assert_tables_equal_dump(tmp_path, all_dumps(b))
