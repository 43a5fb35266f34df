"""`--history` on DuckDB against the fake API, the same cases for both engines: `dlt-bridge run`
(tap -> bridge) and `dlt-bridge native` (see deletes_support.py).

The fake changes in rounds (later `updatedAt`, new tokens, deletions) with a run after each;
`fake_api.rounds.Rounds` keeps what the fake served to each run, and every `<stream>_history` table
is compared with the versions that follows from it alone (never with the engine's own output):
one row per version a run saw, `_valid_from` its replication key value, `_valid_to` the next seen
version's, or the deletion run's time for a record found gone, or null. The current tables stay
exact. The queries of docs/history.md run against the result: test_history_docs.py.
PostgreSQL: test_history_postgres.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS_BY_NAME, child_path
from analytics_dlt.hints import columns_from_json_schema, destination_column_name
from fake_api import FakeAPI, FaultRule
from fake_api.rounds import Rounds
from tests.e2e.bridge_support import (
    assert_tables_equal_dump,
    column_types,
    expected_records,
    parse_rfc3339_us,
    query,
    tables,
)
from tests.e2e.deletes_support import (
    ENGINES,
    EXIT_RUN_FAILED,
    NAMES,
    assert_live_rows_equal_dump,
    deleted_keys,
    destination_state,
    engine_run,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e

HISTORY = "--history"
HISTORY_COLUMNS = {
    "_valid_from": "TIMESTAMP WITH TIME ZONE",
    "_valid_to": "TIMESTAMP WITH TIME ZONE",
    "_version_hash": "BIGINT",
    "_sdc_sequence": "BIGINT",
    "_dlt_load_id": "VARCHAR",
    "_dlt_id": "VARCHAR",
}
"""What a history table has besides the stream's record columns, in this order."""

Versions = dict[tuple[Any, dt.datetime], tuple[dt.datetime | None, dict[str, Any]]]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- reading and checking history tables ----------------------------------------------------------


def record_columns(stream: str) -> dict[str, Any]:
    definition = STREAMS_BY_NAME[stream]
    columns = columns_from_json_schema(definition.schema, [definition.primary_key])
    return {n: c for n, c in columns.items() if n != "_sdc_sequence"}


def history_select(stream: str) -> str:
    """The query `versions_from` reads: `_valid_from`, `_valid_to`, then the record's columns."""
    columns = ", ".join(f'"{destination_column_name(n)}"' for n in record_columns(stream))
    return f"select _valid_from, _valid_to, {columns} from analytics.{stream}_history"


def versions_from(stream: str, rows: list[tuple[Any, ...]]) -> Versions:
    """Rows of `history_select` by (key, `_valid_from`): (`_valid_to`, the record's fields)."""
    key = STREAMS_BY_NAME[stream].primary_key
    columns = record_columns(stream)
    out: Versions = {}
    for valid_from, valid_to, *values in rows:
        record: dict[str, Any] = {}
        for (name, column), value in zip(columns.items(), values, strict=True):
            if isinstance(value, str) and column["data_type"] == "json":
                value = json.loads(value)  # DuckDB: JSON text; PostgreSQL: decoded already
            elif value is not None and column["data_type"] == "timestamp":
                value = value.astimezone(dt.timezone.utc)
            record[name] = value
        since = valid_from.astimezone(dt.timezone.utc)
        until = valid_to.astimezone(dt.timezone.utc) if valid_to is not None else None
        assert (record[key], since) not in out, f"{stream}_history: {record[key]} twice"
        out[(record[key], since)] = (until, record)
    return out


def history_versions(workdir: Path, stream: str) -> Versions:
    """`<stream>_history` of the DuckDB file in `workdir` (none: empty)."""
    if f"{stream}_history" not in tables(workdir):
        return {}
    return versions_from(stream, query(workdir, history_select(stream)))


def versions_in(database: Path) -> Callable[[str], Versions]:
    """A reader of each stream's `<stream>_history` in the DuckDB file `database` (for
    `assert_history_is_the_fakes`)."""
    import duckdb

    def read(stream: str) -> Versions:
        with duckdb.connect(str(database), read_only=True) as con:
            return versions_from(stream, con.execute(history_select(stream)).fetchall())

    return read


def assert_history_is_the_fakes(
    where: Path | Callable[[str], Versions], rounds: Rounds, first: int = 0
) -> None:
    """Every history table holds exactly the versions the runs saw, with their validity.
    `where`: a DuckDB working directory, or a function reading one stream's versions."""
    versions_of = where if callable(where) else functools.partial(history_versions, where)
    for name in NAMES:
        got = versions_of(name)
        want = rounds.expected(name, first)
        assert len(got) == len(want), f"{name}_history: {len(got)} rows, expected {len(want)}"
        for version in want:
            since = parse_rfc3339_us(version.valid_from)
            assert (version.key, since) in got, f"{name}_history: no version {version}"
            until, record = got[(version.key, since)]
            if version.gone is not None:
                low, high = version.gone
                assert until is not None and low <= until <= high, (name, version.key, until)
            else:
                expected = parse_rfc3339_us(version.valid_to) if version.valid_to else None
                assert until == expected, (name, version.key, since, until, expected)
            assert record == expected_records(name, [version.record])[0], (name, version.key)


def history_snapshot(workdir: Path) -> dict[str, list[str]]:
    """Every history table's rows, dlt's columns included, sorted."""
    return {
        name: sorted(map(repr, query(workdir, f"select * from analytics.{name}_history")))
        for name in NAMES
        if f"{name}_history" in tables(workdir)
    }


def run_ok(engine: str, workdir: Path, api: FakeAPI, *args: str) -> str:
    result = engine_run(engine, workdir, api, HISTORY, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


# -- the cases -------------------------------------------------------------------------------------


def test_rounds_of_changes_and_deletions_make_one_row_per_version(
    engine: str, fake_api: FakeAPI, tmp_path: Path
) -> None:
    rounds = Rounds(fake_api)
    with rounds.run():
        run_ok(engine, tmp_path, fake_api)
    assert_history_is_the_fakes(tmp_path, rounds)
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    for name in NAMES:  # the record's columns as the current table has them, then ours
        current = {
            c: t for c, t in column_types(tmp_path, name).items() if c not in HISTORY_COLUMNS
        }
        assert column_types(tmp_path, f"{name}_history") == {**current, **HISTORY_COLUMNS}

    for seed in (1, 2):  # later updatedAt on a fifth of every stream, new tokens
        fake_api.mutate(share=0.2, seed=seed)
        with rounds.run():
            run_ok(engine, tmp_path, fake_api)
        assert_history_is_the_fakes(tmp_path, rounds)
        assert_tables_equal_dump(tmp_path, all_dumps(fake_api))

    before = history_snapshot(tmp_path)  # nothing changed upstream: nothing changes
    with rounds.run():
        run_ok(engine, tmp_path, fake_api)
    assert history_snapshot(tmp_path) == before

    fake_api.delete_records(share=0.15, seed=3)  # a deletion run closes what is gone
    fake_api.mutate(share=0.1, seed=4)
    with rounds.run(deletions=True):
        run_ok(engine, tmp_path, fake_api, "--deletes", "soft")
    assert_history_is_the_fakes(tmp_path, rounds)
    assert_live_rows_equal_dump(tmp_path, fake_api)
    for name in NAMES:  # closed at the time the current table got as `_sdc_deleted_at`
        key = STREAMS_BY_NAME[name].primary_key
        deleted_at = dict(
            query(
                tmp_path,
                f'select "{key}", _sdc_deleted_at from analytics."{name}"'
                " where _sdc_deleted_at is not null",
            )
        )
        assert deleted_at, name
        closed = {
            k: until
            for (k, _), (until, _) in history_versions(tmp_path, name).items()
            if k in deleted_at and until is not None and until == deleted_at[k]
        }
        assert set(closed) == set(deleted_at), name

    before = history_snapshot(tmp_path)  # the same deletion run again: nothing changes
    with rounds.run(deletions=True):
        run_ok(engine, tmp_path, fake_api, "--deletes", "soft")
    assert history_snapshot(tmp_path) == before


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_failed_run_changes_no_history_row(
    engine: str, fake_api: FakeAPI, tmp_path: Path, mode: str
) -> None:
    rounds = Rounds(fake_api)
    with rounds.run(deletions=True):
        run_ok(engine, tmp_path, fake_api, "--deletes", mode)
    fake_api.mutate(share=0.3, seed=1)
    with rounds.run(deletions=True):
        run_ok(engine, tmp_path, fake_api, "--deletes", mode)
    history, state = history_snapshot(tmp_path), destination_state(tmp_path)

    fake_api.mutate(share=0.3, seed=2)
    fake_api.delete_records(share=0.2, seed=3)
    source = fake_api.dump("ingest_source")[-1]["id"]  # its endpoints come late in the run
    path = child_path(STREAMS_BY_NAME["ingest_source_endpoint"].path, src_id=source)
    fake_api.add_fault_rule(FaultRule("503", path))  # beyond the retry budget (1 retry)
    failed = engine_run(engine, tmp_path, fake_api, HISTORY, "--deletes", mode)
    assert failed.returncode == EXIT_RUN_FAILED[engine], failed.stderr[-3000:]
    assert history_snapshot(tmp_path) == history
    assert destination_state(tmp_path) == state
    assert_history_is_the_fakes(tmp_path, rounds)

    fake_api.clear_faults()  # the next run records what the failed one did not
    with rounds.run(deletions=True):
        run_ok(engine, tmp_path, fake_api, "--deletes", mode)
    assert_history_is_the_fakes(tmp_path, rounds)
    if mode == "hard":  # history keeps what was true; the current table what is
        assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
        assert all(deleted_keys(tmp_path, name) == set() for name in NAMES)
    else:
        assert_live_rows_equal_dump(tmp_path, fake_api)


@pytest.mark.parametrize("mode", ["incremental", "soft"])
def test_history_starts_on_an_existing_dataset(
    engine: str, fake_api: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    deletes = mode != "incremental"
    args = ["--deletes", mode] if deletes else []
    rounds = Rounds(fake_api)
    with rounds.run(deletions=deletes):  # without history: no history table
        assert engine_run(engine, tmp_path, fake_api, *args).returncode == 0
    assert not any(t.endswith("_history") for t in tables(tmp_path))
    fake_api.mutate(share=0.2, seed=1)
    with rounds.run(deletions=deletes):  # the first history run: the rows as they were, closed
        stderr = run_ok(engine, tmp_path, fake_api, *args)
    assert "history starts" in stderr + caplog.text  # native: in this process's log
    assert_history_is_the_fakes(tmp_path, rounds, first=0)
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))

    fake_api.mutate(share=0.2, seed=2)
    fake_api.delete_records(share=0.1, seed=3)
    with rounds.run(deletions=deletes):  # and from then on as usual
        run_ok(engine, tmp_path, fake_api, *args)
    assert_history_is_the_fakes(tmp_path, rounds, first=0)


def test_an_unchanged_stream_starts_history_too(
    engine: str, fake_api: FakeAPI, tmp_path: Path
) -> None:
    rounds = Rounds(fake_api)
    with rounds.run():
        assert engine_run(engine, tmp_path, fake_api).returncode == 0
    with rounds.run():  # nothing changed: every history table is the current table
        run_ok(engine, tmp_path, fake_api)
    assert_history_is_the_fakes(tmp_path, rounds)
    assert all(history_versions(tmp_path, name) for name in NAMES)


def test_a_change_without_a_new_updated_at_is_counted_and_reported(
    engine: str, fake_api: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_ok(engine, tmp_path, fake_api)
    touched = fake_api.mutate(share=0.2, seed=1, keep_updated_at=True)
    # an incremental run never sees them (the bookmark did not move): a full scan does
    caplog.clear()
    logged = run_ok(engine, tmp_path, fake_api, "--deletes", "soft") + caplog.text
    for name in NAMES:
        key = STREAMS_BY_NAME[name].primary_key
        assert touched[name], name
        reported = f"stream '{name}' history: {len(touched[name])} record(s) changed without"
        assert reported in logged, name
        versions = history_versions(tmp_path, name)
        assert len(versions) == len(fake_api.dump(name))  # no version added...
        served = {r[key]: r for r in fake_api.dump(name)}
        for (k, _), (until, record) in versions.items():  # ...the version holds what is served
            assert until is None
            assert record == expected_records(name, [served[k]])[0], (name, k)
