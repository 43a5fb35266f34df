"""`dlt-bridge run --destination postgres --deletes {soft,hard}` after deletions upstream, on the
throwaway PostgreSQL cluster (the session fixture `postgres`, tests/postgres.py).

After `api.delete_records(...)`:
* `soft`: the rows with `_sdc_deleted_at` null equal the fake's new dump, and exactly the deleted
  keys are marked (their last values kept);
* `hard`: each table equals the new dump (the deleted rows are gone).

The credentials reach the bridge through its subprocess's `env` only (see `Target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from fake_api import FakeAPI
from tests.e2e.bridge_support import expected_records
from tests.e2e.test_bridge_postgres import DATASET, Target, assert_clean_postgres_load
from tests.postgres import PostgresCluster
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


@pytest.fixture
def target(postgres: PostgresCluster, tmp_path: Path) -> Target:
    return Target(postgres, tmp_path)


def deleted_keys(target: Target, stream: str) -> set[Any]:
    """Keys whose `_sdc_deleted_at` is set (empty when the table has no such column)."""
    key = next(s.primary_key for s in STREAMS if s.name == stream)
    columns = target.query(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s",
        [DATASET, stream],
    )
    if ("_sdc_deleted_at",) not in columns:
        return set()
    rows = target.query(
        f'select "{key}" from {DATASET}."{stream}" where _sdc_deleted_at is not null'
    )
    return {r[0] for r in rows}


def assert_live_rows_equal_dump(target: Target, api: FakeAPI) -> None:
    """Per stream: the unmarked rows equal the dump (keys, values, types), no duplicate keys."""
    for stream in STREAMS:
        key = stream.primary_key
        marked = deleted_keys(target, stream.name)
        rows = target.loaded_records(stream.name)
        keys = [r[key] for r in rows]
        assert len(keys) == len(set(keys)), f"{stream.name}: duplicate keys"
        live = {r[key]: r for r in rows if r[key] not in marked}
        want = {r[key]: r for r in expected_records(stream.name, api.dump(stream.name))}
        assert sorted(live) == sorted(want), f"{stream.name}: live keys differ from the dump"
        for k, record in want.items():
            assert live[k] == record, f"{stream.name} {k}: differs"
            for name, value in record.items():
                assert type(live[k][name]) is type(value), (stream.name, k, name)


def test_soft_marks_exactly_the_deleted_keys(fake_api: FakeAPI, target: Target) -> None:
    first = target.run(fake_api, "--deletes", "soft")
    assert_clean_postgres_load(target, first)
    assert_live_rows_equal_dump(target, fake_api)
    assert all(deleted_keys(target, s.name) == set() for s in STREAMS)
    before = {s.name: {r[s.primary_key]: r for r in target.loaded_records(s.name)} for s in STREAMS}

    deleted = fake_api.delete_records(share=0.2, seed=5)
    soft = target.run(fake_api, "--deletes", "soft")
    assert_clean_postgres_load(target, soft)
    assert_live_rows_equal_dump(target, fake_api)
    for stream in STREAMS:
        assert deleted[stream.name], stream.name
        assert deleted_keys(target, stream.name) == set(deleted[stream.name]), stream.name
        rows = {r[stream.primary_key]: r for r in target.loaded_records(stream.name)}
        for key in deleted[stream.name]:  # a marked row keeps its last values
            assert rows[key] == before[stream.name][key], f"{stream.name} {key}"


def test_hard_tables_equal_the_new_dump(fake_api: FakeAPI, target: Target) -> None:
    first = target.run(fake_api, "--deletes", "hard")
    assert_clean_postgres_load(target, first)
    target.assert_tables_equal_dump(all_dumps(fake_api))

    deleted = fake_api.delete_records(share=0.25, seed=8)
    assert all(deleted.values()), deleted
    hard = target.run(fake_api, "--deletes", "hard")
    assert_clean_postgres_load(target, hard)
    target.assert_tables_equal_dump(all_dumps(fake_api))
    for stream in STREAMS:
        assert deleted_keys(target, stream.name) == set(), stream.name
