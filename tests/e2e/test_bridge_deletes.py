"""`dlt-bridge run/load --deletes {soft,hard}` on DuckDB against the fake API and scripted input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS_BY_NAME, child_path
from fake_api import FakeAPI, FaultRule
from tests.e2e.bridge_support import (
    assert_tables_equal_dump,
    load_ids,
    record,
    rows,
    run_bridge,
    schema,
    singer_lines,
    state,
    stored_state,
    tables,
)
from tests.e2e.deletes_support import (
    NAMES,
    assert_live_rows_equal_dump,
    bridge_run,
    deleted_keys,
    snapshot,
)
from tests.support import all_dumps

pytestmark = pytest.mark.e2e

EXIT_BAD_INPUT = 3


def test_soft_marks_exactly_the_deleted_keys_and_a_returning_record_is_live_again(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    first = bridge_run(tmp_path, fake_api)
    assert first.returncode == 0, first.stderr[-3000:]
    deleted = fake_api.delete_records(share=0.2, seed=5)
    soft = bridge_run(tmp_path, fake_api, "--deletes", "soft")
    assert soft.returncode == 0, soft.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    for name in NAMES:
        assert deleted[name], name
        assert deleted_keys(tmp_path, name) == set(deleted[name]), name
    # the same run again changes nothing
    before = snapshot(tmp_path)
    again = bridge_run(tmp_path, fake_api, "--deletes", "soft")
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(tmp_path) == before
    # the deleted records come back upstream: live again, nothing marked
    fake_api.reset_data()
    back = bridge_run(tmp_path, fake_api, "--deletes", "soft")
    assert back.returncode == 0, back.stderr[-3000:]
    assert_live_rows_equal_dump(tmp_path, fake_api)
    for name in NAMES:
        assert deleted_keys(tmp_path, name) == set(), name


def test_hard_makes_the_tables_equal_the_new_dump(fake_api: FakeAPI, tmp_path: Path) -> None:
    assert bridge_run(tmp_path, fake_api).returncode == 0
    fake_api.delete_records(share=0.25, seed=8)
    hard = bridge_run(tmp_path, fake_api, "--deletes", "hard")
    assert hard.returncode == 0, hard.stderr[-3000:]
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))
    fake_api.reset_data()  # back upstream: back in the table
    assert bridge_run(tmp_path, fake_api, "--deletes", "hard").returncode == 0
    assert_tables_equal_dump(tmp_path, all_dumps(fake_api))


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_run_failing_part_way_deletes_and_marks_nothing(
    fake_api: FakeAPI, tmp_path: Path, mode: str
) -> None:
    assert bridge_run(tmp_path, fake_api, "--deletes", mode).returncode == 0
    before, state_before, loads_before = (
        snapshot(tmp_path),
        stored_state(tmp_path),
        load_ids(tmp_path),
    )
    fake_api.delete_records(share=0.3, seed=2)
    source = fake_api.dump("ingest_source")[0]["id"]
    path = child_path(STREAMS_BY_NAME["ingest_source_endpoint"].path, src_id=source)
    fake_api.add_fault_rule(FaultRule("503", path))  # beyond the retry budget (1 retry)
    failed = bridge_run(tmp_path, fake_api, "--deletes", mode)
    assert failed.returncode == 4
    assert snapshot(tmp_path) == before
    assert stored_state(tmp_path) == state_before
    assert load_ids(tmp_path) == loads_before


def test_off_ignores_activate_version(tmp_path: Path) -> None:
    messages = [
        schema("things", {"id": {"type": "string"}}),
        record("things", id="a"),
        record("things", id="b"),
        state({"n": 1}),
    ]
    assert run_bridge(tmp_path, ["load"], singer_lines(*messages)).returncode == 0
    second = [
        schema("things", {"id": {"type": "string"}}),
        record("things", id="a") | {"version": 2},
        {"type": "ACTIVATE_VERSION", "stream": "things", "version": 2},
        state({"n": 2}),
    ]
    assert run_bridge(tmp_path, ["load"], singer_lines(*second)).returncode == 0
    assert rows(tmp_path, "things", "id") == [("a",), ("b",)]


def _things(version: int, *ids: str) -> list[dict[str, Any]]:
    return [
        schema("things", {"id": {"type": "string"}, "n": {"type": "integer"}}),
        *(record("things", id=i, n=version) | {"version": version} for i in ids),
        {"type": "ACTIVATE_VERSION", "stream": "things", "version": version},
        state({"version": version}),
    ]


def test_load_applies_activate_version_from_any_tap(tmp_path: Path) -> None:
    """A classic tap's pattern too: ACTIVATE_VERSION first and again after the records."""
    assert run_bridge(tmp_path, ["load"], singer_lines(*_things(1, "a", "b", "c"))).returncode == 0
    classic = _things(2, "a", "c")
    classic.insert(1, {"type": "ACTIVATE_VERSION", "stream": "things", "version": 2})
    res = run_bridge(tmp_path, ["load", "--deletes", "soft"], singer_lines(*classic))
    assert res.returncode == 0, res.stderr[-3000:]
    got = rows(tmp_path, "things", "id, n, _sdc_deleted_at is not null")
    assert got == [("a", 2, False), ("b", 1, True), ("c", 2, False)]
    assert res.states == [{"version": 2}]
    back = run_bridge(tmp_path, ["load", "--deletes", "soft"], singer_lines(*_things(3, "b")))
    assert back.returncode == 0, back.stderr[-3000:]
    got = rows(tmp_path, "things", "id, n, _sdc_deleted_at is not null")
    assert got == [("a", 2, True), ("b", 3, False), ("c", 2, True)]
    hard = run_bridge(tmp_path, ["load", "--deletes", "hard"], singer_lines(*_things(4, "c")))
    assert hard.returncode == 0, hard.stderr[-3000:]
    assert rows(tmp_path, "things", "id, n, _sdc_deleted_at") == [("c", 4, None)]


def test_activate_version_without_schema_is_bad_input(tmp_path: Path) -> None:
    assert run_bridge(tmp_path, ["load"], singer_lines(*_things(1, "a", "b"))).returncode == 0
    before = rows(tmp_path, "things", "id, n")
    messages = [
        *_things(2, "a"),
        {"type": "ACTIVATE_VERSION", "stream": "others", "version": 2},
    ]
    res = run_bridge(tmp_path, ["load", "--deletes", "hard"], singer_lines(*messages))
    assert res.returncode == EXIT_BAD_INPUT
    assert "others" in res.stderr
    assert res.states == []
    assert rows(tmp_path, "things", "id, n") == before
    assert "others" not in tables(tmp_path)


def test_an_older_version_than_the_applied_one_is_bad_input(tmp_path: Path) -> None:
    res = run_bridge(tmp_path, ["load", "--deletes", "soft"], singer_lines(*_things(5, "a", "b")))
    assert res.returncode == 0, res.stderr[-3000:]
    before, loads = rows(tmp_path, "things", "*"), load_ids(tmp_path)
    old = run_bridge(tmp_path, ["load", "--deletes", "soft"], singer_lines(*_things(4, "a")))
    assert old.returncode == EXIT_BAD_INPUT
    assert "things" in old.stderr
    assert old.states == []
    assert rows(tmp_path, "things", "*") == before
    assert load_ids(tmp_path) == loads


def test_a_destination_that_cannot_merge_is_refused(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    res = run_bridge(
        tmp_path,
        ["load", "--deletes", "soft", "--destination", "filesystem"],
        singer_lines(*_things(1, "a")),
        extra_env={"DESTINATION__FILESYSTEM__BUCKET_URL": bucket.as_uri()},
    )
    assert res.returncode == EXIT_BAD_INPUT
    assert "things" in res.stderr
    assert res.states == []
    assert not any(bucket.rglob("*.parquet")) and not any(bucket.rglob("*.jsonl*"))
