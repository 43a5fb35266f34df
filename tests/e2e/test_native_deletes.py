"""`dlt-bridge native --deletes {soft,hard}` (and `analytics_source(deletes=...)`) on DuckDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_api.streams import STREAMS_BY_NAME, child_path
from fake_api import FakeAPI, FaultRule
from tests.e2e.bridge_support import assert_tables_equal_dump, load_ids
from tests.e2e.deletes_support import (
    NAMES,
    assert_live_rows_equal_dump,
    deleted_keys,
    native_run,
    snapshot,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


def test_soft_reads_everything_marks_the_deleted_keys_and_unmarks_returning_ones(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    assert native_run(tmp_path, fake_api).returncode == 0
    deleted = fake_api.delete_records(share=0.2, seed=5)
    soft = native_run(tmp_path, fake_api, "--deletes", "soft")
    assert soft.returncode == 0, soft.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    for name in NAMES:
        assert deleted[name], name
        assert deleted_keys(tmp_path, name) == set(deleted[name]), name
    fake_api.reset_data()
    back = native_run(tmp_path, fake_api, "--deletes", "soft")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    assert all(deleted_keys(tmp_path, name) == set() for name in NAMES)


def test_hard_makes_the_tables_equal_the_new_dump(fake_api: FakeAPI, tmp_path: Path) -> None:
    assert native_run(tmp_path, fake_api).returncode == 0
    fake_api.delete_records(share=0.25, seed=8)
    hard = native_run(tmp_path, fake_api, "--deletes", "hard")
    assert hard.returncode == 0, hard.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_run_failing_part_way_deletes_and_marks_nothing(
    fake_api: FakeAPI, tmp_path: Path, mode: str
) -> None:
    assert native_run(tmp_path, fake_api, "--deletes", mode).returncode == 0
    before, loads = snapshot(tmp_path), load_ids(tmp_path)
    fake_api.delete_records(share=0.3, seed=2)
    source = fake_api.dump("ingest_source")[0]["id"]
    path = child_path(STREAMS_BY_NAME["ingest_source_endpoint"].path, src_id=source)
    fake_api.add_fault_rule(FaultRule("503", path))
    failed = native_run(tmp_path, fake_api, "--deletes", mode)
    assert failed.returncode == 1
    assert snapshot(tmp_path) == before
    assert load_ids(tmp_path) == loads


def test_a_destination_that_cannot_merge_is_refused(fake_api: FakeAPI, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    res = native_run(
        tmp_path,
        fake_api,
        "--deletes",
        "soft",
        "--destination",
        "filesystem",
        extra_env={"DESTINATION__FILESYSTEM__BUCKET_URL": bucket.as_uri()},
    )
    assert res.returncode == 2
    assert not bucket.exists() or not any(p.is_file() for p in bucket.rglob("*"))
