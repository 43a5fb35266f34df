"""One run per pipeline and dataset at a time: a second run waits (bounded) or stops at once.

Two runs of one pipeline at once break each other: they share dlt's working folder (packages,
state; dagster-dlt even drops it at each attempt), a DuckDB file takes one writer, and on a
server both create and merge the same schema. `RunGuard` is taken at the start of a run, before
any of that is touched, and released at its end:

1. `hold_pipeline`, before `dlt.pipeline()` opens the working folder: an OS lock (`flock`) on
   `<pipelines_dir>/<pipeline_name>.lock`.
2. `hold_destination`, before a package is loaded, the state synced or the destination opened:
   DuckDB, an OS lock on `<database file>.lock` next to the file (runs of other pipelines or
   folders into that file are held too); PostgreSQL, a session-level advisory lock
   (`pg_try_advisory_lock`, keyed by a stable hash of the dataset name) on a connection of its
   own, held for the run, so runs on other machines with folders of their own are held as well.

The kernel releases an OS lock when its process ends, however it ends; the server releases an
advisory lock with its session (probed every minute: a vanished machine frees it in minutes). Who
holds a guard is kept in the lock file or the session's `application_name`, for the one line a
second run prints before it raises `RunBusyError` (on the command line: exit code `EXIT_BUSY`):

    environment 'a' is already loading since 12:03:11 (pid 1234 on host x); this run did nothing

With `wait` > 0 it says once that it waits, then waits up to that many seconds. Nested guards of
one thread are one run: they share locks and the outer label; another thread is another run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("analytics_dlt")

EXIT_BUSY = 5
"""Exit code of a command that stopped because another run of its pipeline is in progress."""
POLL_FIRST, POLL_MAX = 0.1, 2.0
"""Seconds between attempts while waiting: from POLL_FIRST, doubling, up to POLL_MAX."""
KEEPALIVES = "SET tcp_keepalives_idle = 60; SET tcp_keepalives_interval = 10; "
KEEPALIVES += "SET tcp_keepalives_count = 6"
"""The server ends the lock session (freeing the lock) two minutes after the run's machine stops
answering, not after the operating system's two hours."""
NAMEDATALEN = 63
"""PostgreSQL keeps the first 63 bytes of an `application_name`."""
_HOLDER = re.compile(r"^dlt-run (\d+)@(\S+) (\S+)(?: (.*))?$")


class RunBusyError(RuntimeError):
    """Another run holds the guard; this run touched nothing. The message is one line."""


class GuardError(RuntimeError):
    """The guard cannot be taken (a lock file not writable, the server unreachable)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a guard, as far as it is known; `by` says what run (`Dagster run 1a2b3c4d`)."""

    pid: int | None = None
    host: str | None = None
    started: datetime | None = None
    by: str | None = None

    def describe(self, today: Any = None) -> str:
        """`since 12:03:11 (pid 1234 on host x)`, or as much of it as is known."""
        parts = []
        if self.started is not None:
            local = self.started.astimezone()
            same_day = local.date() == (today or datetime.now().astimezone().date())
            parts.append(f"since {local.strftime('%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')}")
        who = [self.by] if self.by else []
        if self.pid is not None:
            who.append(f"pid {self.pid}" + (f" on host {self.host}" if self.host else ""))
        if who:
            parts.append(f"({', '.join(who)})")
        return " ".join(parts)

    def text(self) -> str:
        """One line, written to the lock file (and, cut at 63 bytes, the `application_name`)."""
        started = self.started.isoformat(timespec="seconds") if self.started else "-"
        return f"dlt-run {self.pid}@{self.host} {started}" + (f" {self.by}" if self.by else "")

    @classmethod
    def parse(cls, text: str | None, started: datetime | None = None) -> Holder | None:
        """The holder `text()` wrote; None for an empty or foreign text. `started` (the lock
        session's start) replaces a start time cut off the `application_name`."""
        match = _HOLDER.match((text or "").strip())
        if match is None:
            return Holder(started=started) if started else None
        with contextlib.suppress(ValueError):
            started = datetime.fromisoformat(match.group(3))
        return cls(int(match.group(1)), match.group(2), started, match.group(4))

    @classmethod
    def this_process(cls, by: str | None = None) -> Holder:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        return cls(os.getpid(), socket.gethostname(), now, by)


def folder_lock_path(pipelines_dir: str, pipeline_name: str) -> str:
    """The lock file of a pipeline's working folder: beside it, in the pipelines folder."""
    return os.path.join(os.path.abspath(pipelines_dir), f"{pipeline_name}.lock")


def duckdb_lock_path(database: str) -> str:
    """The lock file of a DuckDB database file: next to it."""
    return os.path.abspath(database) + ".lock"


def advisory_key(dataset_name: str) -> int:
    """The advisory lock key of a dataset: a stable signed 64-bit hash of its name (every
    version and machine must compute the same one)."""
    digest = hashlib.blake2b(f"dlt-dataset:{dataset_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _FileLock:
    """`flock` on a file that is never deleted (deleting it would let two runs lock two files)."""

    def __init__(self, path: str, make_dir: bool = True) -> None:
        self.path, self.make_dir = path, make_dir
        self.key = f"file:{path}"
        self._fd: int | None = None

    def try_acquire(self, holder: Holder) -> bool:
        fd = -1
        try:
            if self.make_dir:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            raise GuardError(f"cannot lock {self.path} ({exc.strerror or exc})") from None
        self._fd = fd
        with contextlib.suppress(OSError):  # who holds it is for messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.text().encode(), 0)
        return True

    def holder(self) -> Holder | None:
        with contextlib.suppress(OSError), open(self.path, encoding="utf-8") as fh:
            return Holder.parse(fh.read())
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # an empty file: nobody holds it
            os.close(fd)  # the last descriptor closed: the flock is released


class _AdvisoryLock:
    """`pg_try_advisory_lock(key)` on a connection of its own, held until `release`."""

    def __init__(self, credentials: Any, dataset_name: str) -> None:
        self.credentials = credentials
        self.number = advisory_key(dataset_name)
        server = f"{credentials.host}:{credentials.port}/{credentials.database}"
        self.key = f"postgres:{server}:{self.number}"
        self._connection: Any = None

    def try_acquire(self, holder: Holder) -> bool:
        import psycopg2

        if self._connection is None:
            name = holder.text().encode()[:NAMEDATALEN].decode(errors="ignore")
            try:
                dsn = self.credentials.to_native_representation()
                self._connection = psycopg2.connect(dsn, application_name=name)
            except psycopg2.Error as exc:
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise GuardError(
                    f"cannot connect to PostgreSQL for the run guard: {text}"
                ) from None
            self._connection.autocommit = True
            idle = "; SET idle_session_timeout = 0"  # PostgreSQL 14+: an idle lock session stays
            with self._connection.cursor() as cursor:
                cursor.execute(
                    KEEPALIVES + (idle if self._connection.server_version >= 140000 else "")
                )
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.number,))
            return bool(cursor.fetchone()[0])

    def holder(self) -> Holder | None:
        high, low = (self.number >> 32) & 0xFFFFFFFF, self.number & 0xFFFFFFFF
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(
                    "SELECT a.application_name, a.backend_start FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
                    " AND l.granted AND l.objsubid = 1 AND l.classid = %s::bigint::oid"
                    " AND l.objid = %s::bigint::oid AND l.database = (SELECT oid FROM"
                    " pg_database WHERE datname = current_database())",
                    (high, low),
                )
                row = cursor.fetchone()
        except Exception:  # who holds it is for the message only
            return None
        return Holder.parse(row[0], row[1]) if row else None

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()  # the session ends: the server releases the lock


_Lock = _FileLock | _AdvisoryLock
_HELD: dict[str, tuple[int, int]] = {}  # the locks this process holds: key -> (thread, count)
_HELD_LOCK = threading.Lock()
_ACTIVE = threading.local()  # `guards`: the guards entered in this thread, outermost first


def _nest(key: str) -> bool:
    """Whether this thread holds `key` already (then once more; another thread: another run)."""
    with _HELD_LOCK:
        thread, count = _HELD.get(key, (None, 0))
        if thread != threading.get_ident():
            return False
        _HELD[key] = (thread, count + 1)
        return True


def _unnest(key: str) -> bool:
    """One hold less; whether it was the outermost one (the lock is released now)."""
    with _HELD_LOCK:
        thread, count = _HELD.pop(key)
        if count > 1:
            _HELD[key] = (thread, count - 1)
        return count == 1


def _duckdb_file(credentials: Any) -> str | None:
    """The database file, if it is one in a folder that exists (else DuckDB fails the run)."""
    db = getattr(credentials, "database", None)
    if not isinstance(db, str) or db[:1] in ("", ":"):  # `:memory:`, a connection: no file
        return None
    return db if os.path.isdir(os.path.dirname(os.path.abspath(db))) else None


class RunGuard:
    """The locks of one run; a context manager releasing them all at its end.

    `label` names what is guarded in messages (`environment 'a'`, `pipeline 'tap_analytics'`);
    `wait`: seconds to wait for another run (0: stop at once); `on_wait` gets the line saying
    that this run waits and the one saying it goes on (default: warnings on the `analytics_dlt`
    logger); `by` says what run this is, for the message another run prints.
    """

    def __init__(
        self,
        label: str,
        *,
        wait: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
        by: str | None = None,
    ) -> None:
        outer = getattr(_ACTIVE, "guards", None)
        self.label = outer[0].label if outer else label  # nested: the same run, its name
        self.wait = max(0.0, wait)
        self.on_wait = on_wait or log.warning
        self.holder = Holder.this_process(by)
        self.waited = 0.0  # seconds this run waited for another one
        self._deadline: float | None = None
        self._said = False
        self._held: list[_Lock] = []

    def hold_pipeline(self, pipeline_name: str, pipelines_dir: str | None = None) -> None:
        """The pipeline's working folder, before `dlt.pipeline()` opens it; `pipelines_dir`
        None: dlt's default (`$DLT_DATA_DIR/pipelines`, else ~/.dlt/pipelines)."""
        if not pipelines_dir:
            from analytics_dlt.compat import default_pipelines_dir

            pipelines_dir = default_pipelines_dir()
        self._take(_FileLock(folder_lock_path(pipelines_dir, pipeline_name)))

    def hold_destination(self, pipeline: Any) -> None:
        """What `pipeline` loads into, before anything is loaded, synced or opened there: its
        DuckDB file, or its dataset on PostgreSQL. Other destinations: nothing more (the working
        folder's lock holds on one machine)."""
        from dlt.common.configuration.exceptions import ConfigurationException

        destination = getattr(pipeline, "destination", None)
        kind = destination.destination_type.rsplit(".", 1)[-1] if destination else None
        if kind not in ("duckdb", "postgres"):
            return
        try:
            credentials = pipeline.destination_client().config.credentials
        except ConfigurationException:  # no credentials: the run fails before it loads anything
            return
        if kind == "postgres":
            self._take(_AdvisoryLock(credentials, pipeline.dataset_name))
        elif (database := _duckdb_file(credentials)) is not None:
            self._take(_FileLock(duckdb_lock_path(database), make_dir=False))

    def _take(self, lock: _Lock) -> None:
        if _nest(lock.key):  # an outer guard of this thread holds it: shared
            self._held.append(lock)
            return
        started = time.monotonic()
        if self._deadline is None:  # one bound for all the locks of this guard
            self._deadline = started + self.wait
        interval, waiting = POLL_FIRST, False
        while not self._try(lock):
            waiting, holder = True, lock.holder()
            left = self._deadline - time.monotonic()
            if left <= 0:
                lock.release()
                self.release()
                state = f"still loading {self._who(holder)} after {self.wait:.0f} s of waiting"
                if not self._said:
                    state = f"already loading {self._who(holder)}"
                raise RunBusyError(f"{self.label} is {state}; this run did nothing")
            if not self._said:
                self._said = True
                self.on_wait(
                    f"{self.label} is already loading {self._who(holder)}; waiting up to"
                    f" {left:.0f} s for that run to finish"
                )
            time.sleep(min(interval, left))
            interval = min(interval * 2, POLL_MAX)
        with _HELD_LOCK:
            _HELD[lock.key] = (threading.get_ident(), 1)
        self._held.append(lock)
        if waiting:
            seconds = time.monotonic() - started
            self.waited += seconds
            self.on_wait(f"{self.label}: the other run finished after {seconds:.0f} s; going on")

    def _try(self, lock: _Lock) -> bool:
        try:
            return lock.try_acquire(self.holder)
        except BaseException:
            lock.release()
            self.release()
            raise

    @staticmethod
    def _who(holder: Holder | None) -> str:
        return (holder.describe() if holder is not None else "") or "(another run holds it)"

    def release(self) -> None:
        """Release every lock this guard took (a nested one stays with the outer guard)."""
        while self._held:
            lock = self._held.pop()
            if _unnest(lock.key):
                lock.release()

    def __enter__(self) -> RunGuard:
        _ACTIVE.__dict__.setdefault("guards", []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.guards.remove(self)
        self.release()


def exclusive(
    body: Callable[[RunGuard], int],
    *,
    pipeline_name: str,
    label: str | None = None,
    pipelines_dir: str | None = None,
    wait: float = 0.0,
    logger: logging.Logger = log,
) -> int:
    """A command's `body(guard)` with the pipeline's working folder held; the body holds the
    destination once it has made the pipeline (`guard.hold_destination`). Another run holding
    either: its one line on `logger` and `EXIT_BUSY`; no guard to be had: the reason and 1."""
    try:
        label = label or f"pipeline '{pipeline_name}'"
        with RunGuard(label, wait=wait, on_wait=logger.warning) as guard:
            guard.hold_pipeline(pipeline_name, pipelines_dir)
            return body(guard)
    except RunBusyError as exc:
        logger.error("%s", exc)
        return EXIT_BUSY
    except GuardError as exc:
        logger.error("%s", exc)
        return 1
