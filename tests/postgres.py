"""A throwaway PostgreSQL cluster for the tests, from the Debian `postgresql` server binaries.

`start_cluster()` runs `initdb` in a new temporary directory, starts the server on 127.0.0.1 and a
free port (no Unix socket, `fsync` off), waits until `pg_isready` answers, and returns a
`PostgresCluster`; `cluster.stop()` shuts it down and removes the directory. The session fixture
`postgres` in tests/conftest.py does both around the whole test session.

* The binaries are found in `/usr/lib/postgresql/<version>/bin` (the newest version installed; env
  `ANALYTICS_PG_BINDIR` names another folder). `make test-all` installs them with apt-get when
  they are missing (`make postgres`).
* `initdb` refuses to run as root: as root, the server runs as the unprivileged `postgres` user the
  Debian package creates (`runuser -u postgres --`); otherwise as the current user.
* Missing binaries FAIL the tests that need the server, with what to install, unless
  `ANALYTICS_SKIP_POSTGRES=1` is set (then those tests are skipped: for local runs only).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_ROOT = Path("/usr/lib/postgresql")
BINDIR_ENV = "ANALYTICS_PG_BINDIR"
SKIP_ENV = "ANALYTICS_SKIP_POSTGRES"
SERVER_USER = "postgres"
"""The OS user the server runs as when the tests run as root (created by the Debian package)."""
SUPERUSER = "postgres"
"""The database superuser `initdb` creates."""
READY_TIMEOUT = 60.0

INSTALL_HINT = (
    "the PostgreSQL server binaries (initdb, pg_ctl, pg_isready) were not found in"
    f" {PG_ROOT}/<version>/bin. Install them with `make postgres` (apt-get install"
    " postgresql), or set ANALYTICS_PG_BINDIR to their folder; to skip the PostgreSQL tests"
    f" locally, set {SKIP_ENV}=1"
)


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing (the fixture fails; skips with ANALYTICS_SKIP_POSTGRES)."""


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_bindir() -> Path:
    """The folder holding initdb/pg_ctl/pg_isready: env ANALYTICS_PG_BINDIR, else the newest
    /usr/lib/postgresql/<version>/bin."""
    candidates: list[Path] = []
    if explicit := os.environ.get(BINDIR_ENV):
        candidates.append(Path(explicit))
    elif PG_ROOT.is_dir():
        versions = sorted((p for p in PG_ROOT.iterdir() if p.is_dir()), key=_version_key)
        candidates.extend(v / "bin" for v in reversed(versions))
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "pg_isready")):
            return bindir
    raise PostgresUnavailable(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running server: connection details, and `stop()`."""

    bindir: Path
    directory: Path
    port: int
    password: str
    run_as: list[str]
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    databases: list[str] = field(default_factory=list)

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        """A `postgresql://` URL (the form dlt takes in DESTINATION__POSTGRES__CREDENTIALS)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg2 connection in autocommit mode (close it when done)."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            connect_timeout=10,
        )
        conn.autocommit = True
        return conn

    def query(self, database: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description is not None else []
        finally:
            conn.close()

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database with a unique name (each test gets its own)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.query("postgres", f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def is_ready(self) -> bool:
        probe = [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)]
        probe += ["-U", self.user, "-d", "postgres", "-t", "2"]
        return subprocess.run(probe, check=False, capture_output=True).returncode == 0

    def stop(self) -> None:
        """Stop the server (fast shutdown: disconnects clients) and remove its directory."""
        try:
            if (self.datadir / "postmaster.pid").exists():
                _run(
                    [
                        *self.run_as,
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                    ],
                    "pg_ctl stop",
                    timeout=60,
                )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _run(argv: list[str], what: str, timeout: float = 120) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def _run_as() -> tuple[list[str], int | None, int | None]:
    """Command prefix to run the server's programs unprivileged, and that user's uid/gid."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVER_USER!r} user to run initdb as (the Debian"
            f" postgresql package creates it): {INSTALL_HINT}"
        ) from None
    if shutil.which("runuser"):
        prefix = ["runuser", "-u", SERVER_USER, "--"]
    else:
        prefix = ["su", "-s", "/bin/sh", SERVER_USER, "-c", '"$0" "$@"']
    return prefix, entry.pw_uid, entry.pw_gid


def start_cluster(ready_timeout: float = READY_TIMEOUT) -> PostgresCluster:
    """initdb + start on 127.0.0.1:<free port>, then wait for `pg_isready` (see module doc)."""
    bindir = find_bindir()
    run_as, uid, gid = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="analytics-pg-"))
    try:
        if uid is not None and gid is not None:
            os.chown(directory, uid, gid)
        password = secrets.token_hex(12)
        pwfile = directory / "pwfile"
        pwfile.write_text(password + "\n")
        if uid is not None and gid is not None:
            os.chown(pwfile, uid, gid)
        pwfile.chmod(0o600)
        cluster = PostgresCluster(bindir, directory, 0, password, run_as)
        _run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(cluster.datadir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        pwfile.unlink()
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            cluster.port = free_port()
            if _start(cluster, ready_timeout):
                return cluster
            if attempt == 2 or "could not bind" not in cluster.log_tail():
                raise RuntimeError(
                    f"PostgreSQL did not start on 127.0.0.1:{cluster.port}; server log:\n"
                    + cluster.log_tail()
                )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def _start(cluster: PostgresCluster, ready_timeout: float) -> bool:
    """Start the server without waiting (pg_ctl -W), then poll pg_isready until it accepts
    connections; False as soon as the server process is gone (it failed to start)."""
    options = (
        f"-c listen_addresses=127.0.0.1 -p {cluster.port} -c unix_socket_directories=''"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    )
    pg_ctl = str(cluster.bindir / "pg_ctl")
    _run(
        [
            *cluster.run_as,
            pg_ctl,
            "start",
            "-W",
            "-D",
            str(cluster.datadir),
            "-l",
            str(cluster.logfile),
            "-o",
            options,
        ],
        "pg_ctl start",
    )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if cluster.is_ready():
            return True
        if re.search(r"FATAL|database system is shut down", cluster.log_tail()):
            return False  # the server gave up (e.g. the port was taken meanwhile)
        time.sleep(0.1)  # poll interval between readiness probes
    with contextlib.suppress(Exception):
        cluster.stop()
    raise RuntimeError(
        f"PostgreSQL not ready after {ready_timeout:.0f} s; server log:\n{cluster.log_tail()}"
    )
