"""Issue 7.6: the API key never leaks.

Every test in tests/reliability/ uses a fresh `sk_live_...` key and, when it ends, the `ws`
fixture searches every artifact the test produced for it: each run's stdout (the JSONL) and
stderr at DEBUG level (singer-sdk via TAP_ANALYTICS_LOGLEVEL, the bridge via --log-level, dlt
via RUNTIME__LOG_LEVEL), state files, the DuckDB file (read with SQL, dlt's compressed state
decoded), the dlt pipeline working directory (load packages, parquet read back, trace pickle).
The tests here add the cases aimed at secrets: a scanner self-check, a tour of every command,
redirects to another origin, and the plain-http warning.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import pytest

from fake_api import DatasetConfig
from tests.e2e.bridge_support import assert_tables_equal_dump, stored_state
from tests.reliability.support import Workspace, clean_env, find_secret, new_key
from tests.servers import Handler, Reply, Request, ScriptedServer
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def test_the_scanner_finds_a_planted_key(tmp_path: Path) -> None:
    """The scan is only worth something if it finds the key where dlt and DuckDB would hide it."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dlt.common.versioned_state import compress_state

    key = new_key()
    (tmp_path / "plain.log").write_text(f"header Authorization: Bearer {key}\n")
    (tmp_path / "packed.jsonl.gz").write_bytes(gzip.compress(json.dumps({"k": key}).encode()))
    state = compress_state(cast(Any, {"sources": {"x": {"singer_state": {"leak": key}}}}))
    (tmp_path / "state.insert_values.gz").write_bytes(gzip.compress(f"('{state}')".encode()))
    table = pa.table({"value": [key] * 50 + ["x"] * 5000})
    pq.write_table(table, tmp_path / "rows.parquet", compression="zstd")
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("create schema analytics")
    con.execute("create table analytics.t as select 'row ' || i as v from range(20000) t(i)")
    con.execute("insert into analytics.t values (?)", [key])
    con.execute("create table analytics.s (state varchar)")
    con.execute("insert into analytics.s values (?)", [state])
    con.close()
    (tmp_path / "clean.txt").write_text(key[:-1] + "_")  # almost the key: not a hit
    found = find_secret(tmp_path, key)
    for name in (
        "plain.log",
        "packed.jsonl.gz (gunzipped)",
        "state.insert_values.gz (gunzipped) (base64, compressed)",
        "rows.parquet (parquet rows)",
        "db.duckdb table analytics.t",
        "db.duckdb table analytics.s (base64, compressed)",
    ):
        assert name in found, (name, found)
    assert not any(f.startswith("clean.txt") for f in found)


def test_no_command_leaks_the_key_even_at_debug_level(ws: Workspace, fake_api_factory: Any) -> None:
    """Tap (full, incremental, --discover, wrong key), bridge run and state, and a bridge run
    whose tap is configured from environment variables (`--config ENV`): the key is in none of
    their artifacts. (`tap | dlt-bridge load` is covered by the crash tests' scans.)"""
    api = fake_api_factory(DatasetConfig(applications=5), token=ws.key)
    config = ws.config_for(api, max_concurrency=4)
    full = ws.tap(config)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "DEBUG" in full.stderr and "urllib3" in full.stderr  # the log level took effect
    api.mutate(share=0.3, seed=1)
    incremental = ws.tap(config, state=full.last_state)
    assert incremental.returncode == 0 and incremental.of_type("RECORD")
    assert ws.tap(config, args=["--discover"]).returncode == 0
    wrong = ws.tap({**config, "api_key": new_key()})
    assert wrong.returncode != 0 and "HTTP 401" in wrong.stderr

    bridged = ws.bridge_run(config)
    assert bridged.returncode == 0, bridged.stderr[-3000:]
    assert "DEBUG" in bridged.stderr
    shown = ws.bridge(["state"])
    assert shown.returncode == 0 and json.loads(shown.stdout) == stored_state(ws.root)
    api.mutate(share=0.3, seed=2)
    env = clean_env(TAP_ANALYTICS_API_KEY=ws.key, TAP_ANALYTICS_BASE_URL=api.url)
    from_env = ws.bridge(["run", "--config", "ENV"], env=env)
    assert from_env.returncode == 0, from_env.stderr[-3000:]
    assert_tables_equal_dump(ws.root, all_dumps(api))

    produced = {p.suffix for p in ws.root.rglob("*") if p.is_file()}
    assert {".jsonl", ".log", ".json", ".duckdb", ".parquet", ".pickle"} <= produced, produced
    ws.assert_no_leak()


# -- redirects -----------------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[Callable[[], ScriptedServer]]:
    """Start scripted servers (tests/servers.py); all are closed at the end of the test."""
    started: list[ScriptedServer] = []

    def start() -> ScriptedServer:
        server = ScriptedServer().start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.mark.parametrize(
    ("status", "other_host"),
    [(302, "localhost"), (301, "127.0.0.1"), (307, "localhost"), (308, "127.0.0.1")],
)
def test_authorization_is_not_forwarded_on_a_redirect(
    ws: Workspace, servers: Callable[[], ScriptedServer], status: int, other_host: str
) -> None:
    """The API answers with a redirect to another origin (another host name, or the same host
    on another port): the key goes nowhere but `base_url`, and the run stops with a clear
    error instead of reading data from the other origin."""
    other = servers()
    other.empty("/v1/app")  # an empty, valid page, should the client follow
    origin = f"http://{other_host}:{other.port}"
    api = servers()
    api.route(
        "/v1/app",
        lambda request: Reply(
            status, b"", {"Location": f"{origin}{request.path}?{urlencode(request.query)}"}
        ),
    )
    run = ws.tap({"api_key": ws.key, "base_url": api.url, "max_concurrency": 1})
    assert api.requests and api.requests[0].headers["authorization"] == f"Bearer {ws.key}"
    assert other.requests == []  # not followed at all: neither the key nor anything else
    assert run.returncode != 0
    refused = [line for line in run.stderr.splitlines() if "redirect" in line]
    assert refused and "stream 'applications'" in refused[-1] and "/v1/app" in refused[-1]


# -- error bodies that echo the key ----------------------------------------------------------


def _echo(status: int, content_type: str, pad: int) -> Handler:
    """An API or proxy whose error pages echo the request's Authorization header."""

    def handle(request: Request) -> Reply:
        echo = f"Authorization: {request.headers.get('authorization')}"
        if content_type == "application/json":
            body = json.dumps({"code": "echo", "detail": " " * pad + echo}).encode()
        else:
            body = (" " * pad + f"<html><body><pre>{echo}</pre></body></html>").encode()
        return Reply(status, body, {"Content-Type": content_type})

    return handle


@pytest.mark.parametrize(
    ("status", "content_type", "pad"),
    [
        (401, "application/json", 0),  # fatal status, JSON detail
        (500, "application/json", 0),  # retried, then given up
        (502, "text/html", 0),  # a proxy's page
        (502, "text/html", 405),  # the key straddles where the excerpt is cut
        (200, "text/html", 0),  # not JSON: retried, then given up
        (200, "text/html", 405),
        (200, "application/json", 0),  # JSON but not a page
    ],
)
def test_error_bodies_that_echo_the_key_are_redacted(
    ws: Workspace,
    servers: Callable[[], ScriptedServer],
    status: int,
    content_type: str,
    pad: int,
) -> None:
    api = servers()
    api.route("/v1/app", _echo(status, content_type, pad))
    run = ws.tap(
        {
            "api_key": ws.key,
            "base_url": api.url,
            "max_concurrency": 1,
            "max_retries": 1,
            "backoff_factor": 0.01,
        }
    )
    assert run.returncode != 0
    assert "stream 'applications', GET /v1/app" in run.stderr
    prefix = ws.key[:14]  # not even a part of the key
    assert prefix not in run.stderr and prefix not in run.stdout, [
        line for line in run.stderr.splitlines() if prefix in line
    ][:2]


# -- plain http --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "warns"),
    [
        ("http://api.example.com", True),
        ("http://10.1.2.3:8080", True),
        ("http://localhost.example.com", True),
        ("https://api.example.com", False),
        ("http://127.0.0.1:8080", False),
    ],
)
def test_plain_http_to_a_non_loopback_host_warns(ws: Workspace, base_url: str, warns: bool) -> None:
    run = ws.tap({"api_key": ws.key, "base_url": base_url}, args=["--discover"])
    assert run.returncode == 0, run.stderr[-2000:]
    warned = [line for line in run.stderr.splitlines() if "plain http" in line]
    assert bool(warned) == warns, warned
    if warns:
        assert "WARNING" in warned[0] and "non-loopback" in warned[0]
    assert sys.executable  # the run above is the artifact; `ws` scans it for the key
