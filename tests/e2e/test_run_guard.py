"""One run per pipeline at a time (analytics_dlt.guard), across processes and machines.

Runs are synchronised by events, never by time: `HeldAPI` holds every request to a fake API
until the test lets it go, so a first run is known to hold its guard (it has reached the API)
while a second one starts; the second run's outcome (stopped, or its line saying it waits) is
read before the first is let go. A holder process says `HELD` on its stdout once it holds.
"""

from __future__ import annotations

import os
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
from tests.postgres import PostgresCluster

pytestmark = [pytest.mark.e2e]

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
