"""The native dlt source and tap -> bridge produce identical DuckDB tables (full and incremental).

Both engines run against the same fake API: the Singer path as `python -m dlt_bridge run --config
c.json` (which runs `python -m tap_analytics`), the native path in process. Compared: the set of
tables, every column's name and type (dlt's `_dlt_*` columns aside), and every row (the values of
`_sdc_sequence`, the load-time sequence documented in `analytics_dlt.hints`, aside). The native
tables are also checked against the fake API's own dump.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_api.timestamps import canonical
from analytics_dlt.hints import SEQUENCE_COLUMN, destination_column_name
from analytics_source import analytics_source
from analytics_source.cli import NativeRunSummary, load_native
from fake_api import DatasetConfig, FakeAPI

pytestmark = pytest.mark.e2e

DATASET = "analytics"
PAGE_SIZE = 7  # several pages per list, so pagination is part of the comparison
PARITY_DATA = DatasetConfig(
    seed=11,
    applications=23,
    endpoints_per_app=4,
    integrations_per_app=2,
    event_types=40,
    tokens=9,
    ingest_sources=5,
    endpoints_per_source=3,
    webhook_endpoints=15,
)

REPO = Path(__file__).resolve().parents[2]


# -- running the two engines --------------------------------------------------------------------


def run_bridge(api: FakeAPI, workdir: Path, *, page_size: int = PAGE_SIZE) -> Path:
    """tap -> bridge (`dlt-bridge run`); returns the DuckDB file."""
    config = workdir / "tap_config.json"
    config.write_text(
        json.dumps(api.tap_config(page_size=page_size, max_concurrency=4)), encoding="utf-8"
    )
    env = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlt_bridge",
            "run",
            "--config",
            str(config),
            "--pipeline-name",
            "bridge_parity",
            "--pipelines-dir",
            str(workdir / "pipelines"),
            "--dataset-name",
            DATASET,
            "--progress-interval",
            "0",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir / "bridge_parity.duckdb"


def run_native(
    api: FakeAPI, workdir: Path, *, page_size: int = PAGE_SIZE, parallelized: bool = True
) -> Path:
    """The native source in process; returns the DuckDB file."""
    return run_native_summary(api, workdir, page_size=page_size, parallelized=parallelized)[0]


def run_native_summary(
    api: FakeAPI, workdir: Path, *, page_size: int = PAGE_SIZE, parallelized: bool = True
) -> tuple[Path, NativeRunSummary]:
    database = workdir / "native_parity.duckdb"
    pipeline = dlt.pipeline(
        "native_parity",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name=DATASET,
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = analytics_source(api.url, api.token, page_size=page_size, parallelized=parallelized)
    return database, load_native(pipeline, source)


# -- reading the tables -------------------------------------------------------------------------


def _is_dlt(name: str) -> bool:
    return name.startswith("_dlt")


def table_columns(database: Path) -> dict[str, list[tuple[str, str, str]]]:
    """{table: [(column, type, nullable)]} of the dataset, without dlt's own tables/columns."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = ? ORDER BY table_name, ordinal_position",
            [DATASET],
        ).fetchall()
    out: dict[str, list[tuple[str, str, str]]] = {}
    for table, column, data_type, nullable in rows:
        if _is_dlt(table):
            continue
        out.setdefault(table, [])
        if not _is_dlt(column):
            out[table].append((column, data_type, nullable))
    return out


def table_rows(database: Path, table: str) -> list[dict[str, Any]]:
    """All rows of `table` ordered by primary key, without `_dlt_*` and `_sdc_sequence`."""
    pk = destination_column_name(STREAMS_BY_NAME[table].primary_key)
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(f'SELECT * FROM "{DATASET}"."{table}" ORDER BY "{pk}"')
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    keep = [i for i, n in enumerate(names) if not _is_dlt(n) and n != SEQUENCE_COLUMN]
    return [{names[i]: row[i] for i in keep} for row in rows]


def assert_same_tables(bridge_db: Path, native_db: Path) -> None:
    bridge_cols, native_cols = table_columns(bridge_db), table_columns(native_db)
    assert sorted(native_cols) == sorted(bridge_cols) == sorted(s.name for s in STREAMS)
    for table in bridge_cols:
        assert native_cols[table] == bridge_cols[table], table
        bridge_rows, native_rows = table_rows(bridge_db, table), table_rows(native_db, table)
        assert len(native_rows) == len(bridge_rows), table
        for b, n in zip(bridge_rows, native_rows, strict=True):
            assert n == b, table


def _expected_value(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if data_type.startswith("TIMESTAMP"):
        # dlt keeps microseconds: digits 7-9 are truncated
        c = canonical(value)
        return dt.datetime.fromisoformat(c[:26]).replace(tzinfo=dt.timezone.utc)
    if data_type == "JSON":
        return value
    return value


def assert_matches_dump(api: FakeAPI, database: Path) -> None:
    """Every stream: same count, same keys, same values as the fake API's ground truth."""
    columns = table_columns(database)
    for stream in STREAMS:
        expected = api.dump(stream.name)
        rows = table_rows(database, stream.name)
        pk = stream.primary_key
        assert len(rows) == len(expected), stream.name
        by_key = {r[destination_column_name(pk)]: r for r in rows}
        assert set(by_key) == {e[pk] for e in expected}, stream.name
        types = {c: t for c, t, _ in columns[stream.name]}
        for record in expected:
            row = by_key[record[pk]]
            for prop in stream.schema["properties"]:
                column = destination_column_name(prop)
                got, want = row[column], _expected_value(record.get(prop), types[column])
                if types[column] == "JSON" and got is not None:
                    got = json.loads(got)
                if isinstance(got, dt.datetime):
                    got = got.astimezone(dt.timezone.utc)
                assert got == want, (stream.name, record[pk], prop)


def rows_in_last_load(database: Path) -> dict[str, int]:
    """Rows per stream table written by the most recent load."""
    with duckdb.connect(str(database), read_only=True) as con:
        (last,) = con.execute(f'SELECT max(load_id) FROM "{DATASET}"._dlt_loads').fetchone()
        return {
            s.name: con.execute(
                f'SELECT count(*) FROM "{DATASET}"."{s.name}" WHERE _dlt_load_id = ?', [last]
            ).fetchone()[0]
            for s in STREAMS
        }


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture
def parity_api() -> Any:
    with FakeAPI(PARITY_DATA) as api:
        yield api


@pytest.mark.parametrize("parallelized", [True, False], ids=["parallel", "sequential"])
def test_full_run_parity_and_dump(parity_api: FakeAPI, tmp_path: Path, parallelized: bool) -> None:
    bridge_db = run_bridge(parity_api, tmp_path)
    native_db = run_native(parity_api, tmp_path, parallelized=parallelized)
    assert_same_tables(bridge_db, native_db)
    assert_matches_dump(parity_api, native_db)


def test_incremental_run_after_mutation(parity_api: FakeAPI, tmp_path: Path) -> None:
    run_bridge(parity_api, tmp_path)
    run_native(parity_api, tmp_path)
    touched = parity_api.mutate(share=0.2, seed=5)
    assert all(touched.values())
    bridge_db = run_bridge(parity_api, tmp_path)
    native_db = run_native(parity_api, tmp_path)
    assert_same_tables(bridge_db, native_db)
    assert_matches_dump(parity_api, native_db)
    # Both runs were incremental: exactly the changed (or, for tokens, added) records were loaded,
    # children included although most of their parents did not change.
    expected = {stream: len(keys) for stream, keys in touched.items()}
    assert rows_in_last_load(native_db) == expected
    assert rows_in_last_load(bridge_db) == expected


def test_second_run_without_changes_loads_nothing(parity_api: FakeAPI, tmp_path: Path) -> None:
    native_db = run_native(parity_api, tmp_path)
    before = table_columns(native_db)
    parity_api.reset_stats()
    _, summary = run_native_summary(parity_api, tmp_path)
    assert table_columns(native_db) == before
    assert summary.records == 0, summary.rows_by_table
    # every list was read again, every child list under every parent included
    by_template = parity_api.stats()["by_template"]
    assert by_template["/v1/app/{app_id}/endpoint"] == PARITY_DATA.applications
    assert by_template["/ingest/api/v1/source/{src_id}/endpoint"] == PARITY_DATA.ingest_sources
    assert_matches_dump(parity_api, native_db)


def test_deleted_parent_children_skipped(parity_api: FakeAPI, tmp_path: Path) -> None:
    """A parent listed but gone (its child path answers 404) is skipped by both engines."""
    apps = [r["id"] for r in parity_api.dump("applications")]
    sources = [r["id"] for r in parity_api.dump("ingest_source")]
    parity_api.delete_parents("applications", apps[3:5])
    parity_api.delete_parents("ingest_source", sources[:1])
    bridge_db = run_bridge(parity_api, tmp_path)
    native_db = run_native(parity_api, tmp_path)
    assert_same_tables(bridge_db, native_db)
    assert_matches_dump(parity_api, native_db)
    assert parity_api.stats()["by_status"].get("404", 0) >= 3 * 2  # both engines met the 404s


def test_state_comes_back_from_the_destination(parity_api: FakeAPI, tmp_path: Path) -> None:
    """A fresh machine (no local pipeline directory) continues incrementally."""
    import shutil

    run_native(parity_api, tmp_path)
    shutil.rmtree(tmp_path / "pipelines")
    _, summary = run_native_summary(parity_api, tmp_path)
    assert summary.records == 0
    touched = parity_api.mutate(share=0.1, seed=8)
    shutil.rmtree(tmp_path / "pipelines")
    native_db, summary = run_native_summary(parity_api, tmp_path)
    assert summary.rows_by_table == {s: len(k) for s, k in touched.items() if k}
    assert_matches_dump(parity_api, native_db)
