"""`--history` into PostgreSQL (the session's throwaway cluster, tests/postgres.py), both engines:
`dlt-bridge run` and `dlt-bridge native`, each as its own process with the credentials in its
environment only.

Rounds of changes and one of deletions with a run after each, as on DuckDB (test_history.py):
every `<stream>_history` holds exactly the versions the fake served, with their validity, the
current tables stay exact, and the queries of docs/history.md answer as on DuckDB
(test_history_docs.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from fake_api import FakeAPI
from fake_api.rounds import Rounds
from tests.e2e.bridge_support import BridgeResult, expected_records, write_tap_config
from tests.e2e.test_bridge_postgres import Target
from tests.e2e.test_history import (
    ENGINES,
    Versions,
    assert_history_is_the_fakes,
    history_select,
    versions_from,
)
from tests.e2e.test_history_docs import run_documented_queries
from tests.postgres import PostgresCluster

pytestmark = pytest.mark.e2e

DATASET = "analytics"


class Database:
    """One test's database on the session's cluster, loaded by either engine."""

    def __init__(self, cluster: PostgresCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.target = Target(cluster, workdir)  # its database, queries and records
        self.name = self.target.database

    def run(self, engine: str, api: FakeAPI, *args: str) -> BridgeResult:
        env = {
            **os.environ,
            "DESTINATION__POSTGRES__CREDENTIALS": self.cluster.dsn(self.name),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
        if engine == "bridge":
            config = write_tap_config(self.workdir, api, max_retries=1, backoff_factor=0)
            argv = ["run", "--config", str(config), "--progress-interval", "0"]
        else:
            env["SOURCES__ANALYTICS__API_KEY"] = api.token
            argv = ["native", "--base-url", api.url, "--pipeline-name", "tap_analytics"]
            argv += ["--max-retries", "1", "--backoff-factor", "0"]
        argv += ["--destination", "postgres", "--dataset-name", DATASET, "--history", *args]
        argv += ["--pipelines-dir", str(self.workdir / "pipelines")]
        proc = subprocess.run(
            [sys.executable, "-m", "dlt_bridge", *argv],
            capture_output=True,
            cwd=self.workdir,
            env=env,
            timeout=300,
            check=False,
        )
        result = BridgeResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.cluster.query(self.name, sql)

    def select_star(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        conn = self.cluster.connect(self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return [d[0] for d in cur.description], list(cur.fetchall())
        finally:
            conn.close()

    def versions(self, stream: str) -> Versions:
        return versions_from(stream, self.query(history_select(stream)))

    def live_records(self, stream: str) -> dict[Any, dict[str, Any]]:
        """The current table's rows not marked deleted, by key (as `expected_records`)."""
        key = STREAMS_BY_NAME[stream].primary_key
        marked = self.query(
            "select 1 from information_schema.columns where table_schema = 'analytics'"
            f" and table_name = '{stream}' and column_name = '_sdc_deleted_at'"
        ) and self.query(
            f'select "{key}" from {DATASET}."{stream}" where _sdc_deleted_at is not null'
        )
        gone = {row[0] for row in marked or []}
        return {r[key]: r for r in self.target.loaded_records(stream) if r[key] not in gone}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def assert_current_tables_are_the_fakes(database: Database, api: FakeAPI) -> None:
    for stream in STREAMS:
        key = stream.primary_key
        want = {r[key]: r for r in expected_records(stream.name, api.dump(stream.name))}
        assert database.live_records(stream.name) == want, stream.name


def test_history_on_postgres_over_rounds_and_the_documented_queries(
    engine: str, fake_api: FakeAPI, postgres: PostgresCluster, tmp_path: Path
) -> None:
    database = Database(postgres, tmp_path)
    rounds = Rounds(fake_api)
    load_ids: list[str] = []

    def run(*args: str, deletions: bool = False) -> None:
        with rounds.run(deletions=deletions):
            database.run(engine, fake_api, *args)
        assert_history_is_the_fakes(database.versions, rounds)
        assert_current_tables_are_the_fakes(database, fake_api)
        latest = database.query(f"select max(load_id) from {DATASET}._dlt_loads")
        load_ids.append(str(latest[0][0]))

    run()
    for seed in (1, 2):
        fake_api.mutate(share=0.4, seed=seed)
        run()
    fake_api.delete_records(share=0.2, seed=3)
    fake_api.mutate(share=0.1, seed=4)
    run("--deletes", "soft", deletions=True)
    run_documented_queries(database.query, database.select_star, rounds, load_ids, deletion_run=3)
