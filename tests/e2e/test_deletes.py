"""`--deletes {soft,hard}` on DuckDB against the fake API, the same cases for both engines:
`dlt-bridge run` (tap -> bridge) and `dlt-bridge native` (see deletes_support.py).

Each case compares with the fake's ground truth, so the two engines agree with each other by
construction: the live rows equal the new dump, exactly the deleted keys are marked (with their
last values), and a run with `--deletes` adds `_sdc_deleted_at` and changes no other column.
Singer input from any tap (`dlt-bridge load`): test_bridge_deletes.py. The tap's own messages in
this mode (ACTIVATE_VERSION): test_tap_deletions.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_api.streams import STREAMS_BY_NAME, child_path
from fake_api import FakeAPI, FaultRule
from tests.e2e.bridge_support import assert_tables_equal_dump, load_ids
from tests.e2e.deletes_support import (
    ENGINES,
    EXIT_REFUSED,
    EXIT_RUN_FAILED,
    NAMES,
    all_column_types,
    assert_live_rows_equal_dump,
    assert_only_deleted_at_added,
    deleted_keys,
    destination_state,
    engine_run,
    records_by_key,
    snapshot,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_soft_marks_exactly_the_deleted_keys_and_a_returning_record_is_live_again(
    engine: str, fake_api: FakeAPI, tmp_path: Path
) -> None:
    first = engine_run(engine, tmp_path, fake_api)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    columns = all_column_types(tmp_path)
    before = {name: records_by_key(tmp_path, name) for name in NAMES}
    deleted = fake_api.delete_records(share=0.2, seed=5)
    soft = engine_run(engine, tmp_path, fake_api, "--deletes", "soft")
    assert soft.returncode == 0, soft.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    assert_only_deleted_at_added(tmp_path, columns)
    for name in NAMES:
        assert deleted[name], name
        assert deleted_keys(tmp_path, name) == set(deleted[name]), name
        after = records_by_key(tmp_path, name)
        # a marked row keeps the values it had when it was last seen
        assert {k: after[k] for k in deleted[name]} == {k: before[name][k] for k in deleted[name]}
    # the same run again changes nothing
    marked = snapshot(tmp_path)
    again = engine_run(engine, tmp_path, fake_api, "--deletes", "soft")
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(tmp_path) == marked
    # the deleted records come back upstream: live again, nothing marked
    fake_api.reset_data()
    back = engine_run(engine, tmp_path, fake_api, "--deletes", "soft")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    for name in NAMES:
        assert deleted_keys(tmp_path, name) == set(), name


def test_hard_makes_the_tables_equal_the_new_dump(
    engine: str, fake_api: FakeAPI, tmp_path: Path
) -> None:
    assert engine_run(engine, tmp_path, fake_api).returncode == 0
    columns = all_column_types(tmp_path)
    fake_api.delete_records(share=0.25, seed=8)
    hard = engine_run(engine, tmp_path, fake_api, "--deletes", "hard")
    assert hard.returncode == 0, hard.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    assert_only_deleted_at_added(tmp_path, columns)
    assert all(deleted_keys(tmp_path, name) == set() for name in NAMES)
    fake_api.reset_data()  # back upstream: back in the table
    again = engine_run(engine, tmp_path, fake_api, "--deletes", "hard")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_run_failing_part_way_deletes_and_marks_nothing(
    engine: str, fake_api: FakeAPI, tmp_path: Path, mode: str
) -> None:
    first = engine_run(engine, tmp_path, fake_api, "--deletes", mode)
    assert first.returncode == 0, first.stderr[-3000:]
    before, state_before, loads_before = (
        snapshot(tmp_path),
        destination_state(tmp_path),
        load_ids(tmp_path),
    )
    fake_api.delete_records(share=0.3, seed=2)
    source = fake_api.dump("ingest_source")[0]["id"]
    path = child_path(STREAMS_BY_NAME["ingest_source_endpoint"].path, src_id=source)
    fake_api.add_fault_rule(FaultRule("503", path))  # beyond the retry budget (1 retry)
    failed = engine_run(engine, tmp_path, fake_api, "--deletes", mode)
    assert failed.returncode == EXIT_RUN_FAILED[engine], failed.stderr[-3000:]
    assert snapshot(tmp_path) == before
    assert destination_state(tmp_path) == state_before
    assert load_ids(tmp_path) == loads_before


def test_a_destination_that_cannot_merge_is_refused(
    engine: str, fake_api: FakeAPI, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    res = engine_run(
        engine,
        tmp_path,
        fake_api,
        "--deletes",
        "soft",
        "--destination",
        "filesystem",
        extra_env={"DESTINATION__FILESYSTEM__BUCKET_URL": bucket.as_uri()},
    )
    assert res.returncode == EXIT_REFUSED[engine], res.stderr[-3000:]
    assert not bucket.exists() or not any(p.is_file() for p in bucket.rglob("*"))
