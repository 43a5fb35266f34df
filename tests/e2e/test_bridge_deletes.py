"""`dlt-bridge load --deletes {soft,hard}` on DuckDB with Singer input from any tap
(ACTIVATE_VERSION). Runs against the fake API, for both engines: test_deletes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bridge_support import (
    load_ids,
    record,
    rows,
    run_bridge,
    schema,
    singer_lines,
    state,
    tables,
)

pytestmark = pytest.mark.e2e

EXIT_BAD_INPUT = 3


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
