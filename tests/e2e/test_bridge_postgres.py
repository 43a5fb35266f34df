"""tap-analytics -> dlt-bridge -> PostgreSQL (and `dlt-bridge native` -> PostgreSQL) against the
fake API, compared with its dump, on a throwaway cluster the tests start themselves (the session
fixture `postgres`, tests/postgres.py).

Each test loads into a database of its own; the credentials reach the bridge process through the
`env` of its subprocess only (`DESTINATION__POSTGRES__CREDENTIALS`), never through this process's
environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_dlt.hints import columns_from_json_schema, destination_column_name
from fake_api import DatasetConfig
from tests.e2e.bridge_support import (
    BridgeResult,
    common_args,
    expected_records,
    pending_packages,
    write_tap_config,
)
from tests.postgres import PostgresCluster
from tests.support import all_dumps

pytestmark = pytest.mark.e2e

DATASET = "analytics"
PIPELINE = "tap_analytics"


class Target:
    """One test's database on the session's cluster, and the bridge's working directory."""

    def __init__(self, cluster: PostgresCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.database = cluster.create_database()

    @property
    def env(self) -> dict[str, str]:
        """The child process's environment: this one plus the destination's credentials."""
        return {
            **os.environ,
            "DESTINATION__POSTGRES__CREDENTIALS": self.cluster.dsn(self.database),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dlt_bridge",
            *args,
            "--destination",
            "postgres",
            "--dataset-name",
            DATASET,
            # `native` has no progress lines: only the working directory
            *(
                common_args(self.workdir, args[0])
                if args[0] != "native"
                else self.pipelines_dir_args
            ),
        ]

    @property
    def pipelines_dir_args(self) -> list[str]:
        return ["--pipelines-dir", str(self.workdir / "pipelines")]

    def bridge(self, *args: str, extra_env: dict[str, str] | None = None) -> BridgeResult:
        proc = subprocess.run(
            self.argv(*args),
            capture_output=True,
            cwd=self.workdir,
            env={**self.env, **(extra_env or {})},
            timeout=300,
            check=False,
        )
        return BridgeResult(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    def run(self, api: Any, *args: str) -> BridgeResult:
        config = write_tap_config(self.workdir, api)
        return self.bridge("run", "--config", str(config), *args)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.cluster.query(self.database, sql, params)

    def tables(self) -> set[str]:
        rows = self.query(
            "select table_name from information_schema.tables where table_schema = %s", [DATASET]
        )
        return {r[0] for r in rows}

    def loaded_records(self, stream: str) -> list[dict[str, Any]]:
        """Rows of a stream's table keyed by the schema's property names (as the DuckDB helper
        `bridge_support.loaded_records`: timestamps in UTC, json columns decoded)."""
        definition = STREAMS_BY_NAME[stream]
        if stream not in self.tables():
            return []
        columns = columns_from_json_schema(definition.schema, [definition.primary_key])
        names = [n for n in columns if n != "_sdc_sequence"]
        select = ", ".join(f'"{destination_column_name(n)}"' for n in names)
        out = []
        for row in self.query(f'select {select} from {DATASET}."{stream}"'):
            rec: dict[str, Any] = {}
            for name, value in zip(names, row, strict=True):
                kind = columns[name]["data_type"]
                if isinstance(value, str) and kind == "json":
                    value = json.loads(value)
                elif value is not None and kind == "timestamp":
                    value = value.astimezone(timezone.utc)
                rec[name] = value
            out.append(rec)
        return out

    def assert_tables_equal_dump(self, dumps: dict[str, list[dict[str, Any]]]) -> None:
        """Each stream's table: same row count, same keys (no duplicates), same values and types
        on the schema's fields."""
        for definition in STREAMS:
            key = definition.primary_key
            got = self.loaded_records(definition.name)
            want = expected_records(definition.name, dumps[definition.name])
            got_keys = [r[key] for r in got]
            assert len(got_keys) == len(set(got_keys)), f"{definition.name}: duplicate keys"
            assert len(got) == len(want), (
                f"{definition.name}: {len(got)} rows, dump has {len(want)}"
            )
            by_key = {r[key]: r for r in want}
            for rec in got:
                assert rec == by_key.get(rec[key]), f"{definition.name} {rec[key]}: differs"
                for name, value in rec.items():
                    assert type(value) is type(by_key[rec[key]][name]), (definition.name, name)

    def load_file_formats(self) -> set[str]:
        """Formats of the data load files of every completed package of every pipeline in the
        working dir (`<table>.<file id>.<retry>.<format>[.gz]`)."""
        found = set()
        for job in (self.workdir / "pipelines").glob("*/load/loaded/*/completed_jobs/*"):
            parts = job.name.removesuffix(".gz").split(".")
            if not parts[0].startswith("_dlt") and parts[-1] != "sql":
                found.add(parts[-1])
        return found


@pytest.fixture
def target(postgres: PostgresCluster, tmp_path: Path) -> Target:
    return Target(postgres, tmp_path)


def warnings_logged(stderr: str) -> list[str]:
    """Lines other code than the bridge's own (dlt, its ADBC or parquet fallbacks) logged at
    WARNING or above, found by their level field whatever their wording. The bridge's own
    lines (`dlt-bridge LEVEL ...`, e.g. about a pending package) are asserted where expected."""
    return [
        line
        for line in stderr.splitlines()
        if _LEVEL.search(line) and not line.startswith("dlt-bridge ")
    ]


_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")


def assert_clean_postgres_load(target: Target, result: BridgeResult) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert warnings_logged(result.stderr) == []
    assert target.load_file_formats() == {"insert_values"}  # the destination's preferred format


def test_run_full_then_incremental_equals_dump(fake_api: Any, target: Target) -> None:
    first = target.run(fake_api)
    assert_clean_postgres_load(target, first)
    target.assert_tables_equal_dump(all_dumps(fake_api))

    fake_api.mutate(share=0.2, seed=3)
    second = target.run(fake_api)
    assert_clean_postgres_load(target, second)
    target.assert_tables_equal_dump(all_dumps(fake_api))
    loads = target.query(f"select count(*) from {DATASET}._dlt_loads where status = 0")
    assert loads[0][0] == 2


def test_explicit_loader_file_format_wins(fake_api: Any, target: Target) -> None:
    result = target.run(fake_api, "--loader-file-format", "csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert target.load_file_formats() == {"csv"}
    target.assert_tables_equal_dump(all_dumps(fake_api))


def test_native_full_run_equals_dump(fake_api: Any, target: Target) -> None:
    result = target.bridge(
        "native",
        "--base-url",
        fake_api.url,
        extra_env={"SOURCES__ANALYTICS__API_KEY": fake_api.token},
    )
    assert_clean_postgres_load(target, result)
    target.assert_tables_equal_dump(all_dumps(fake_api))


KILL_DATASET = DatasetConfig(
    seed=5, applications=400, endpoints_per_app=25, integrations_per_app=5, event_types=200
)
"""~12,600 records: a load into PostgreSQL long enough to be killed in the middle of."""


def wait_for_load_started(workdir: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Poll the pipeline's working dir until the load step has started a job of a data table
    (a file in `load/normalized/<load id>/started_jobs` or `completed_jobs`); that load id.
    Fails if the bridge exits first."""
    normalized = workdir / "pipelines" / PIPELINE / "load" / "normalized"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in ("started_jobs", "completed_jobs"):
            for job in normalized.glob(f"*/{folder}/*"):
                if not job.name.startswith("_dlt"):
                    return job.parent.parent.name
        assert proc.poll() is None, "the bridge exited before its load started"
        time.sleep(0.002)  # poll interval
    raise AssertionError(f"no load started after {timeout} s")


def start_bridge(target: Target, api: Any, *wrapper: str) -> subprocess.Popen[bytes]:
    """`dlt-bridge run` in the background (with `python <wrapper>` instead of `python -m
    dlt_bridge` when given); its stderr goes to `bridge-stderr.log` in the working dir."""
    config = write_tap_config(target.workdir, api)
    argv = target.argv("run", "--config", str(config))
    with open(target.workdir / "bridge-stderr.log", "wb") as stderr:
        return subprocess.Popen(
            [argv[0], *wrapper, *argv[3:]] if wrapper else argv,
            cwd=target.workdir,
            env=target.env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def assert_rerun_completes(target: Target, api: Any) -> None:
    """Nothing of the killed run is committed; one rerun loads its package and equals the dump."""
    if "_dlt_loads" in target.tables():
        assert target.query(f"select count(*) from {DATASET}._dlt_loads")[0][0] == 0
    rerun = target.run(api)
    assert_clean_postgres_load(target, rerun)
    assert "finishing 1 pending load package(s)" in rerun.stderr
    assert pending_packages(target.workdir) == []
    target.assert_tables_equal_dump(all_dumps(api))
    again = target.run(api)  # and the pipeline is not stuck: a further run is a normal one
    assert again.returncode == 0, again.stderr[-3000:]
    target.assert_tables_equal_dump(all_dumps(api))


def test_bridge_killed_during_load_then_rerun(fake_api_factory: Any, target: Target) -> None:
    api = fake_api_factory(KILL_DATASET)
    bridge = start_bridge(target, api)
    try:
        package = wait_for_load_started(target.workdir, bridge, timeout=240)
        os.kill(bridge.pid, signal.SIGKILL)
    finally:
        bridge.kill()
        bridge.wait()
    assert bridge.returncode == -signal.SIGKILL
    # the kill landed during the load: the package is still pending
    assert package in pending_packages(target.workdir), "the load had already completed"
    assert_rerun_completes(target, api)


KILL_AFTER_NORMALIZE_COMMIT = """
import os, signal, sys
from dlt.common.storages.load_storage import LoadStorage

commit = LoadStorage.commit_new_load_package

def commit_then_die(self, load_id):
    commit(self, load_id)  # the normalized package is in place, the extracted one not yet deleted
    os.kill(os.getpid(), signal.SIGKILL)

LoadStorage.commit_new_load_package = commit_then_die
from dlt_bridge.cli import main
sys.argv[0] = "dlt-bridge"
raise SystemExit(main(sys.argv[1:]))
"""


def test_bridge_killed_right_after_normalize_commit_then_rerun(
    fake_api: Any, target: Target
) -> None:
    """dlt renames the normalized package into place, then deletes the extracted copy ("do not
    kill this process"): a kill between leaves both, which must not wedge the pipeline."""
    wrapper = target.workdir / "kill_after_commit.py"
    wrapper.write_text(KILL_AFTER_NORMALIZE_COMMIT)
    bridge = start_bridge(target, fake_api, str(wrapper))
    try:
        bridge.wait(timeout=240)
    finally:
        bridge.kill()
        bridge.wait()
    stderr = (target.workdir / "bridge-stderr.log").read_text(errors="replace")
    assert bridge.returncode == -signal.SIGKILL, stderr[-3000:]
    base = target.workdir / "pipelines" / PIPELINE
    extracted = [p.name for p in (base / "normalize" / "extracted").iterdir()]
    assert extracted and extracted == [p.name for p in (base / "load" / "normalized").iterdir()]
    assert_rerun_completes(target, fake_api)
