"""The run guard (analytics_dlt.guard) within one process: another thread holding a pipeline is
held like another process would be (flock conflicts between two open files of one process).

Every test synchronises with events: the holder thread takes the guard and signals, the test
acts, then tells the holder to let go. The guard's own polling is the only waiting.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_dlt.guard import (
    EXIT_BUSY,
    Holder,
    RunBusyError,
    RunGuard,
    advisory_key,
    duckdb_lock_path,
    exclusive,
    folder_lock_path,
)

TIME = r"\d\d:\d\d:\d\d"


class HolderThread:
    """A thread that takes a guard with `take(guard)`, signals `held`, and keeps it until
    `let_go` is set (or the test ends)."""

    def __init__(self, take: Callable[[RunGuard], None], label: str = "pipeline 'p'") -> None:
        self.held = threading.Event()
        self.let_go = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with RunGuard(label, by="the holder") as guard:
                    take(guard)
                    self.held.set()
                    self.let_go.wait(60)
            except BaseException as exc:  # reported by the test
                self.error = exc
                self.held.set()

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> HolderThread:
        self.thread.start()
        assert self.held.wait(60) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.let_go.set()
        self.thread.join(60)


@pytest.fixture
def pipelines(tmp_path: Path) -> str:
    return str(tmp_path / "pipelines")


def duckdb_pipeline(name: str, pipelines_dir: str, database: Path) -> Any:
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=pipelines_dir,
        destination=dlt.destinations.duckdb(credentials=str(database)),
        dataset_name="analytics",
    )


def test_a_second_run_of_a_pipeline_stops_at_once_saying_who_holds_it(pipelines: str) -> None:
    with (
        HolderThread(lambda guard: guard.hold_pipeline("p", pipelines)),
        pytest.raises(RunBusyError) as caught,
        RunGuard("pipeline 'p'") as second,
    ):
        second.hold_pipeline("p", pipelines)
    message = str(caught.value)
    host = re.escape(socket.gethostname())
    assert re.fullmatch(
        rf"pipeline 'p' is already loading since {TIME} \(the holder, pid {os.getpid()} on host"
        rf" {host}\); this run did nothing",
        message,
    ), message
    assert EXIT_BUSY == 5
    # released: the lock file stays (never deleted) but is empty, and the next run takes it
    lock = Path(folder_lock_path(pipelines, "p"))
    assert lock.read_text() == ""
    with RunGuard("pipeline 'p'") as third:
        third.hold_pipeline("p", pipelines)
        assert Holder.parse(lock.read_text()) == third.holder


def test_other_pipelines_and_folders_do_not_hold_each_other(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with HolderThread(lambda guard: guard.hold_pipeline("p", a)):
        for name, folder in (("q", a), ("p", b)):
            with RunGuard(f"pipeline '{name}'") as guard:
                guard.hold_pipeline(name, folder)


def test_a_waiting_run_says_so_once_and_goes_on_when_the_other_finishes(pipelines: str) -> None:
    lines: list[str] = []
    with HolderThread(lambda guard: guard.hold_pipeline("p", pipelines)) as holder:

        def on_wait(line: str) -> None:
            lines.append(line)
            holder.let_go.set()  # the first run finishes once the second says it waits

        with RunGuard("environment 'a'", wait=60, on_wait=on_wait) as second:
            second.hold_pipeline("p", pipelines)
            assert second.waited > 0
    assert len(lines) == 2, lines
    assert re.fullmatch(
        rf"environment 'a' is already loading since {TIME} \(the holder, pid \d+ on host \S+\);"
        r" waiting up to 60 s for that run to finish",
        lines[0],
    ), lines[0]
    assert re.fullmatch(r"environment 'a': the other run finished after \d+ s; going on", lines[1])


def test_a_bounded_wait_ends_in_the_busy_error(pipelines: str) -> None:
    lines: list[str] = []
    with (
        HolderThread(lambda guard: guard.hold_pipeline("p", pipelines)),
        pytest.raises(RunBusyError) as caught,
        RunGuard("p", wait=0.3, on_wait=lines.append) as g,
    ):
        g.hold_pipeline("p", pipelines)
    assert len(lines) == 1 and "waiting up to 0 s" in lines[0]
    assert re.fullmatch(
        rf"p is still loading since {TIME} \(the holder, pid \d+ on host \S+\) after 0 s of"
        " waiting; this run did nothing",
        str(caught.value),
    ), caught.value


def test_a_nested_guard_of_the_same_thread_shares_the_lock(pipelines: str) -> None:
    taken = threading.Event()
    outcome: list[str] = []

    def other_thread() -> None:
        try:
            with RunGuard("p") as guard:
                guard.hold_pipeline("p", pipelines)
                outcome.append("taken")
        except RunBusyError:
            outcome.append("busy")
        taken.set()

    def attempt() -> str:
        taken.clear()
        threading.Thread(target=other_thread, daemon=True).start()
        assert taken.wait(60)
        return outcome.pop()

    with RunGuard("environment 'p'") as outer:
        outer.hold_pipeline("p", pipelines)
        with RunGuard("pipeline 'p'") as inner:
            inner.hold_pipeline("p", pipelines)  # no RunBusyError: the same run
        assert attempt() == "busy"  # the inner guard's end leaves the outer's lock in place
    assert attempt() == "taken"


def test_a_duckdb_file_is_held_whatever_pipeline_or_folder_loads_it(tmp_path: Path) -> None:
    database = tmp_path / "shared.duckdb"
    first = duckdb_pipeline("first", str(tmp_path / "a"), database)
    with HolderThread(lambda guard: guard.hold_destination(first)):
        with pytest.raises(RunBusyError), RunGuard("pipeline 'second'") as guard:
            guard.hold_pipeline("second", str(tmp_path / "b"))  # its own folder: free
            guard.hold_destination(duckdb_pipeline("second", str(tmp_path / "b"), database))
        # the folder lock the failed run took was released with it
        with RunGuard("pipeline 'second'") as again:
            again.hold_pipeline("second", str(tmp_path / "b"))
    assert Path(duckdb_lock_path(str(database))).is_file()
    assert not database.exists()  # the guard never opens the database


def test_a_command_stops_before_its_pipeline_is_made_and_exits_5(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipelines = str(tmp_path / "pipelines")
    database = tmp_path / "x.duckdb"
    made: list[str] = []

    def body(guard: RunGuard) -> int:
        made.append("made")
        guard.hold_destination(duckdb_pipeline("x", pipelines, database))
        return 0

    logger = logging.getLogger("test_run_guard")
    options: dict[str, Any] = {"pipeline_name": "x", "pipelines_dir": pipelines, "logger": logger}
    with HolderThread(lambda guard: guard.hold_pipeline("x", pipelines)):
        assert exclusive(body, label="pipeline 'x'", **options) == EXIT_BUSY
    assert made == []  # stopped before dlt saw the working folder
    assert not (tmp_path / "pipelines" / "x").exists()
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert caplog.records[0].getMessage().startswith("pipeline 'x' is already loading since ")

    assert exclusive(body, label="pipeline 'x'", **options) == 0
    assert made == ["made"]
    # a nested guard (an environment around the command) is the same run, named as the outer
    with RunGuard("environment 'x'") as outer:
        outer.hold_pipeline("x", pipelines)
        with RunGuard("pipeline 'x'") as inner:
            assert inner.label == "environment 'x'"
        assert exclusive(body, label="pipeline 'x'", **options) == 0


def test_the_holder_line_round_trips_and_reads_well() -> None:
    started = datetime(2026, 1, 2, 12, 3, 11, tzinfo=timezone.utc)
    holder = Holder(1234, "x", started, "Dagster run 1a2b3c4d")
    assert Holder.parse(holder.text()) == holder
    today = started.astimezone().date()
    local = started.astimezone().strftime("%H:%M:%S")
    assert holder.describe(today) == f"since {local} (Dagster run 1a2b3c4d, pid 1234 on host x)"
    assert holder.describe(today + timedelta(days=1)).startswith(
        f"since {started.astimezone():%Y-%m-%d} "
    )
    assert Holder.parse("") is None and Holder.parse("not ours") is None
    # an application_name cut at 63 bytes keeps pid and host; the session's start fills in
    cut = holder.text()[:30]
    assert cut.endswith("T12:0")
    assert Holder.parse(cut, started) == Holder(1234, "x", started, None)


def test_the_advisory_key_is_stable_across_versions_and_machines() -> None:
    """Runs on two machines must compute the same key: changing it lets old and new collide."""
    assert advisory_key("analytics_a") == advisory_key("analytics_a")
    assert advisory_key("analytics_a") != advisory_key("analytics_b")
    assert advisory_key("analytics_prod") == PINNED_PROD_KEY
    assert -(2**63) <= advisory_key("analytics_prod") < 2**63


PINNED_PROD_KEY = -5693724845437772392


@pytest.fixture(autouse=True)
def _no_leftover_holds() -> Iterator[None]:
    from analytics_dlt import guard

    yield
    assert not guard._HELD, guard._HELD
