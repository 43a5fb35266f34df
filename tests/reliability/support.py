"""Helpers for the reliability tests: a workspace per test, runs that keep every artifact, the
secret scan over all of them, simulated fault schedules and state-consistency checks.

Every test runs with a fresh secret-looking API key (`sk_live_` + random hex) used as the fake's
token. Config files, which must hold the key, live in `<workspace>/secret/`; everything else a run
produces (stdout as JSONL, stderr logs at DEBUG level, state files, the DuckDB file, the dlt
pipeline working directory) lands elsewhere under the workspace and is searched for the key.
"""

from __future__ import annotations

import base64
import binascii
import collections
import gzip
import json
import os
import re
import secrets
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_api.timestamps import canonical
from fake_api import TRANSIENT_KINDS, fault_for
from tests.support import TapRun, json_lines, parse_tap_output

# -- keys and workspaces ------------------------------------------------------------------------


def new_key() -> str:
    """A fresh key that looks like a live secret, so no other text can contain it by chance."""
    return "sk_live_" + secrets.token_hex(20)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no inherited tap settings, DEBUG logs everywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_ANALYTICS_")}
    env.pop("LOGLEVEL", None)
    env.update(
        {
            "TAP_ANALYTICS_LOGLEVEL": "DEBUG",  # singer-sdk: <PLUGIN>_LOGLEVEL, else LOGLEVEL
            "RUNTIME__LOG_LEVEL": "DEBUG",  # dlt's own logger (inside the bridge)
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class BridgeRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def printed_states(self) -> list[Any]:
        return json_lines(self.stdout)


@dataclass
class Workspace:
    """One test's directory and key. All runs write their artifacts here."""

    root: Path
    key: str = field(default_factory=new_key)
    runs: int = 0

    @property
    def secret_dir(self) -> Path:
        path = self.root / "secret"
        path.mkdir(exist_ok=True)
        return path

    @property
    def out_dir(self) -> Path:
        path = self.root / "out"
        path.mkdir(exist_ok=True)
        return path

    def _next(self, what: str) -> Path:
        self.runs += 1
        return self.out_dir / f"{self.runs:02d}-{what}"

    def write_config(self, config: dict[str, Any], name: str = "tap-config.json") -> Path:
        path = self.secret_dir / name
        path.write_text(json.dumps(config))
        return path

    def config_for(self, api: Any, **extra: Any) -> dict[str, Any]:
        """Tap config for a fake started with `token=self.key`; short waits for tests."""
        return {
            "api_key": self.key,
            "base_url": api.url,
            "backoff_factor": 0.01,
            "request_timeout": 1,
            **extra,
        }

    def write_state(self, state: Any) -> Path:
        path = self._next("state.json")
        path.write_text(json.dumps(state))
        return path

    # -- the tap ------------------------------------------------------------------------------

    def tap_command(self, config: dict[str, Any], state: Any = None) -> list[str]:
        args = [sys.executable, "-m", "tap_analytics", "--config", str(self.write_config(config))]
        if state is not None:
            args += ["--state", str(self.write_state(state))]
        return args

    def tap(
        self,
        config: dict[str, Any],
        *,
        state: Any = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> TapRun:
        """`python -m tap_analytics` at DEBUG level; stdout kept as JSONL, stderr as a log."""
        command = [*self.tap_command(config, state), *args]
        base = self._next("tap")
        stdout_path, stderr_path = base.with_suffix(".jsonl"), base.with_suffix(".log")
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.run(
                command,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env or clean_env(),
                cwd=self.root,
                timeout=timeout,
                check=False,
            )
        stdout = stdout_path.read_text("utf-8")
        stderr = stderr_path.read_text("utf-8", "replace")
        singer = not {"--discover", "--about"} & set(args)  # those print one JSON document
        return parse_tap_output(stdout, returncode=proc.returncode, stderr=stderr, singer=singer)

    # -- the bridge -----------------------------------------------------------------------------

    def bridge_args(self, args: Sequence[str]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dlt_bridge",
            *args,
            "--pipelines-dir",
            str(self.root / "pipelines"),
            # progress lines only where the command has them (load, run)
            *(["--progress-interval", "0"] if args and args[0] in ("load", "run") else []),
            "--log-level",
            "DEBUG",
        ]

    def bridge(
        self,
        args: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 180,
    ) -> BridgeRun:
        """`python -m dlt_bridge <args>` in the workspace (the DuckDB file lands there)."""
        base = self._next("bridge")
        proc = subprocess.run(
            self.bridge_args(args),
            input=stdin,
            capture_output=True,
            cwd=self.root,
            env=env or clean_env(),
            timeout=timeout,
            check=False,
        )
        result = BridgeRun(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        base.with_suffix(".stdout").write_text(result.stdout)
        base.with_suffix(".stderr").write_text(result.stderr)
        return result

    def bridge_run(self, config: dict[str, Any], *extra: str, **kw: Any) -> BridgeRun:
        return self.bridge(["run", "--config", str(self.write_config(config)), *extra], **kw)

    def keep(self, name: str, data: bytes | str) -> None:
        """Keep output captured some other way, so the secret scan sees it."""
        path = self._next(name)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)

    # -- the secret scan ---------------------------------------------------------------------

    def leaks(self) -> list[str]:
        return find_secret(self.root, self.key, exclude=[self.root / "secret"])

    def assert_no_leak(self) -> None:
        found = self.leaks()
        assert not found, f"the API key appears in: {found}"


# -- finding the key in any artifact -----------------------------------------------------------

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")


def _decoded(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """The blob, gunzipped, and every long base64 run decoded (and inflated when compressed).

    dlt stores its state as base64 of compressed JSON, in the DuckDB file and in load packages.
    """
    yield "", blob
    if blob[:2] == b"\x1f\x8b":
        try:
            inner = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error):
            inner = b""
        if inner:
            yield from ((f" (gunzipped){label}", b) for label, b in _decoded(inner))
            return
    for match in _B64_RUN.finditer(blob):
        text = match.group(0)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(text + b"=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                continue
            yield " (base64)", raw
            for inflate in (zlib.decompress, gzip.decompress):
                try:
                    inflated = inflate(raw)
                except (OSError, EOFError, zlib.error):
                    continue
                yield " (base64, compressed)", inflated


def _duckdb_texts(path: Path) -> Iterator[tuple[str, bytes]]:
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:  # locked by a live writer, or not a database
        yield f" (unreadable: {exc})", b""
        return
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
            yield f" table {schema}.{table}", repr(rows).encode()
            for row in rows:
                for value in row:
                    if isinstance(value, str) and len(value) >= 24:
                        yield from (
                            (f" table {schema}.{table}{label}", b)
                            for label, b in _decoded(value.encode())
                        )
    finally:
        con.close()


def _parquet_text(path: Path) -> bytes:
    """The rows of a parquet file as text; a file torn by a kill -9 (empty, or without its
    footer) has no rows to read: its raw bytes are scanned by the caller anyway."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return repr(pq.read_table(path).to_pylist()).encode()
    except (pa.ArrowInvalid, OSError):
        return b""


def find_secret(root: Path, key: str, exclude: Iterable[Path] = ()) -> list[str]:
    """Where under `root` the key occurs: raw bytes, gunzipped, base64-decoded and inflated,
    in any DuckDB table (read with SQL, since DuckDB compresses strings on disk) and in any
    parquet file (read with pyarrow, for the same reason)."""
    needle = key.encode()
    excluded = [e.resolve() for e in exclude]
    hits: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(path.resolve().is_relative_to(e) for e in excluded):
            continue
        name = str(path.relative_to(root))
        blobs: list[tuple[str, bytes]] = list(_decoded(path.read_bytes()))
        if path.suffix == ".duckdb":
            blobs += list(_duckdb_texts(path))
        elif path.suffix == ".parquet":
            blobs.append((" (parquet rows)", _parquet_text(path)))
        hits += [name + label for label, blob in blobs if needle in blob]
    return sorted(set(hits))


# -- fault schedules (the fake's decisions are a pure function of seed, request and attempt) --


def request_keys(debug_log: str) -> list[str]:
    """The fake's request keys (`GET path?query`) of a run, from urllib3's DEBUG lines."""
    return ["GET " + target for target in re.findall(r'"GET (\S+) HTTP/1\.1"', debug_log)]


def simulate_faults(
    keys: Iterable[str],
    seed: int,
    rate: float,
    kinds: tuple[str, ...],
    max_consecutive: int = 3,
) -> tuple[collections.Counter[str], int]:
    """Faults the fake will inject when a client retries each request until it succeeds:
    (count per kind, the longest run of faults on one request)."""
    counts: collections.Counter[str] = collections.Counter()
    longest = 0
    for key in keys:
        run = 0
        while run < max_consecutive:
            kind = fault_for(seed, key, run, rate, kinds)
            if kind is None:
                break
            counts[kind] += 1
            run += 1
        longest = max(longest, run)
    return counts, longest


def pick_fault_seed(
    keys: Sequence[str],
    rate: float = 0.1,
    kinds: tuple[str, ...] = TRANSIENT_KINDS,
    max_slow: int = 2,
) -> tuple[int, collections.Counter[str]]:
    """The first seed whose schedule has every kind, a request that needs all 3 retries, and
    few `slow` faults (each costs one request timeout)."""
    for seed in range(2000):
        counts, longest = simulate_faults(keys, seed, rate, kinds)
        if set(counts) == set(kinds) and longest == 3 and counts["slow"] <= max_slow:
            return seed, counts
    raise AssertionError("no seed gives every fault kind; use more requests")


def wait_for_faults(api: Any, expected: int, timeout: float = 5.0) -> dict[str, Any]:
    """The fake's stats once `expected` faults are counted (a `slow` fault is counted when its
    sleep ends, after the client has already timed out and moved on)."""
    deadline = time.monotonic() + timeout
    stats = api.stats()
    while stats["faults_total"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = api.stats()
    return stats


RETRY_REASONS = {
    "429": "after HTTP 429",
    "429-date": "after HTTP 429",
    "429-no-retry-after": "after HTTP 429",
    "500": "after HTTP 500",
    "502": "after HTTP 502",
    "503": "after HTTP 503",
    "504": "after HTTP 504",
    "reset": "after connection reset by the server",
    "truncated": "after HTTP 200 with a body that is not valid JSON",
    "slow": "after timed out after",
}
"""What the tap's retry log line says for each transient fault kind."""


def retry_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Retrying stream '" in line]


def failing_path(api: Any, stream: str) -> str:
    """A concrete path of `stream`: for a child stream, the one of a parent in the middle."""
    definition = STREAMS_BY_NAME[stream]
    if not definition.is_child:
        return definition.path
    parent = STREAMS_BY_NAME[str(definition.parent)]
    parents = api.dump(parent.name)
    parent_id = parents[len(parents) // 2][parent.primary_key]
    return definition.path.format(**{str(definition.parent_key): parent_id})


# -- records and state ---------------------------------------------------------------------------


def newest(stream: str, records: Iterable[dict[str, Any]]) -> str | None:
    rk = STREAMS_BY_NAME[stream].replication_key
    values = [canonical(r[rk]) for r in records if r.get(rk) is not None]
    return max(values) if values else None


def bookmark(state: Any, stream: str) -> str | None:
    """The stream's completed bookmark (progress markers of an unfinished stream are not one)."""
    value = ((state or {}).get("bookmarks", {}).get(stream) or {}).get("replication_key_value")
    return canonical(value) if isinstance(value, str) else None


def covered_by(stream: str, dump: list[dict[str, Any]], mark: str | None) -> set[str]:
    """Keys of the dump records a bookmark claims are delivered (replication value <= mark)."""
    if mark is None:
        return set()
    definition = STREAMS_BY_NAME[stream]
    return {
        r[definition.primary_key]
        for r in dump
        if r.get(definition.replication_key) is not None
        and canonical(r[definition.replication_key]) <= mark
    }


def assert_states_only_cover_emitted(
    messages: list[dict[str, Any]],
    dumps: dict[str, list[dict[str, Any]]],
    initial_state: Any = None,
) -> None:
    """At every STATE a tap emitted, each bookmark covers only records already emitted (in this
    run, or covered by the state the run started from)."""
    emitted: dict[str, set[str]] = {s.name: set() for s in STREAMS}
    earlier = {
        s.name: covered_by(s.name, dumps[s.name], bookmark(initial_state, s.name)) for s in STREAMS
    }
    for index, message in enumerate(messages):
        if message["type"] == "RECORD":
            key = STREAMS_BY_NAME[message["stream"]].primary_key
            emitted[message["stream"]].add(message["record"][key])
        elif message["type"] == "STATE":
            for stream in STREAMS:
                claimed = covered_by(
                    stream.name, dumps[stream.name], bookmark(message["value"], stream.name)
                )
                missing = claimed - emitted[stream.name] - earlier[stream.name]
                assert not missing, (
                    f"STATE #{index} bookmarks {stream.name} past {len(missing)} record(s) "
                    f"never emitted, e.g. {sorted(missing)[:3]}"
                )


def assert_final_state(state: Any, dumps: dict[str, list[dict[str, Any]]]) -> None:
    """After a complete run: every stream bookmarked at exactly its newest record, no leftover
    progress markers (an interrupted stream's markers must not survive a completed run)."""
    for stream in STREAMS:
        entry = (state or {}).get("bookmarks", {}).get(stream.name) or {}
        assert "progress_markers" not in entry, (stream.name, entry)
        assert bookmark(state, stream.name) == newest(stream.name, dumps[stream.name]), (
            stream.name,
            entry,
        )


def merged(*runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Records of several runs merged on the primary key, later runs winning (what a target
    that merges on keys keeps)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stream in STREAMS:
        by_key: dict[str, dict[str, Any]] = {}
        for run in runs:
            for record in run.get(stream.name, []):
                by_key[record[stream.primary_key]] = record
        out[stream.name] = list(by_key.values())
    return out


def assert_no_duplicate_keys(records: dict[str, list[dict[str, Any]]]) -> None:
    for stream in STREAMS:
        keys = [r[stream.primary_key] for r in records.get(stream.name, [])]
        dupes = [k for k, n in collections.Counter(keys).items() if n > 1]
        assert not dupes, f"{stream.name}: emitted twice in one run: {dupes[:3]}"


def assert_stored_state_not_ahead(workdir: Path, dumps: dict[str, list[dict[str, Any]]]) -> None:
    """Every record the destination's stored bookmark covers is in the destination's table."""
    from tests.e2e.bridge_support import loaded_records, stored_state

    state = stored_state(workdir)
    for stream in STREAMS:
        claimed = covered_by(stream.name, dumps[stream.name], bookmark(state, stream.name))
        if not claimed:
            continue
        have = {r[stream.primary_key] for r in loaded_records(workdir, stream.name)}
        missing = claimed - have
        assert not missing, (
            f"stored state covers {stream.name} rows not loaded: {sorted(missing)[:3]}"
        )
