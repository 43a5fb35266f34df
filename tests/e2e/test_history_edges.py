"""History tables from Singer input of any tap (`dlt-bridge load --history`, in this process), the
cases the fake API never makes, and the dlt hook the native source's history relies on.

* a key with two versions in one input: both recorded, the earlier closed by the next run;
* a replayed older version is not a version again (reported); the same input twice adds nothing;
* `--commit-every`: versions closed across the run's load packages;
* a stream without a replication key gets no history table (reported), the others do;
* `compat.add_step_after_incremental` sees the batches dlt's incremental let through, in order,
  and what it returns goes on to the destination;
* the environments file's `history` (per environment), over the command line's `--history`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest

from analytics_api.streams import STREAMS
from analytics_dlt import compat
from tests.e2e.bridge_support import query, record, run_bridge, schema, singer_lines, state, tables
from tests.e2e.test_bridge_environments import (  # noqa: F401  (fakes: the fixture)
    KEY_A,
    KEY_B,
    bridge,
    entry,
    fakes,
    use,
    write_environments,
)

pytestmark = pytest.mark.e2e

PROPERTIES = {
    "id": {"type": "string"},
    "name": {"type": ["string", "null"]},
    "updatedAt": {"type": "string", "format": "date-time"},
}


def things(*records: dict[str, Any], bookmark: bool = True) -> bytes:
    head = schema("things", PROPERTIES)
    if bookmark:
        head["bookmark_properties"] = ["updatedAt"]
    return singer_lines(head, *records, state({"n": len(records)}))


def thing(key: str, day: int, name: str | None = None) -> dict[str, Any]:
    return record(
        "things", id=key, name=name or f"{key}@{day}", updatedAt=f"2024-01-{day:02d}T00:00:00Z"
    )


def versions(workdir: Path) -> list[tuple[str, int, int | None, str]]:
    """(id, day of `_valid_from`, day of `_valid_to` or None, name), in order."""
    rows = query(
        workdir,
        "select id, _valid_from, _valid_to, name from analytics.things_history order by 1, 2",
    )
    return [(k, since.day, until.day if until else None, name) for k, since, until, name in rows]


def load(workdir: Path, data: bytes, *args: str) -> str:
    result = run_bridge(workdir, ["load", "--history", *args], data)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_two_versions_in_one_input_are_both_kept_and_the_next_run_closes_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="dlt_bridge")
    load(tmp_path, things(thing("a", 1), thing("b", 1)))
    load(tmp_path, things(thing("a", 2), thing("a", 3)))
    assert "1 record(s) had two new versions in this run" in caplog.text
    assert versions(tmp_path) == [
        ("a", 1, 2, "a@1"),
        ("a", 2, None, "a@2"),  # its values are not kept in memory: closed by the next run
        ("a", 3, None, "a@3"),
        ("b", 1, None, "b@1"),
    ]
    load(tmp_path, things())  # any later history run of the stream repairs it
    assert versions(tmp_path) == [
        ("a", 1, 2, "a@1"),
        ("a", 2, 3, "a@2"),
        ("a", 3, None, "a@3"),
        ("b", 1, None, "b@1"),
    ]
    assert query(tmp_path, "select id, name from analytics.things order by 1") == [
        ("a", "a@3"),
        ("b", "b@1"),
    ]


def test_a_replayed_input_adds_no_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = things(thing("a", 1), thing("b", 1))
    load(tmp_path, first)
    load(tmp_path, things(thing("a", 2)))
    recorded = versions(tmp_path)
    caplog.set_level("WARNING", logger="dlt_bridge")
    load(tmp_path, things(thing("a", 2)))  # the same again: nothing
    assert versions(tmp_path) == recorded
    assert "older" not in caplog.text
    load(tmp_path, first)  # an old input again: 'a' is older than its recorded version
    assert versions(tmp_path) == recorded
    assert "1 record(s) arrived with a 'updatedAt' older than their recorded version" in (
        caplog.text
    )


def test_versions_close_across_the_load_packages_of_a_run(tmp_path: Path) -> None:
    lines = [schema("things", PROPERTIES) | {"bookmark_properties": ["updatedAt"]}]
    for day in (1, 2, 3):  # with --commit-every 1 each STATE ends a load package
        lines += [thing("a", day), thing(f"k{day}", day), state({"day": day})]
    load(tmp_path, singer_lines(*lines), "--commit-every", "1")
    load(tmp_path, things(thing("a", 4)), "--commit-every", "1")
    assert versions(tmp_path) == [
        ("a", 1, 2, "a@1"),  # the run's versions, the earlier ones closed by the next run
        ("a", 2, 3, "a@2"),
        ("a", 3, 4, "a@3"),
        ("a", 4, None, "a@4"),
        ("k1", 1, None, "k1@1"),
        ("k2", 2, None, "k2@2"),
        ("k3", 3, None, "k3@3"),
    ]


def test_a_stream_without_a_replication_key_gets_no_history_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="dlt_bridge")
    other = schema("notes", {"id": {"type": "string"}, "text": {"type": "string"}})
    data = singer_lines(
        other,
        record("notes", id="n1", text="x"),
        schema("things", PROPERTIES) | {"bookmark_properties": ["updatedAt"]},
        thing("a", 1),
        state({}),
    )
    load(tmp_path, data)
    assert {"notes", "things", "things_history"} <= tables(tmp_path)
    assert "notes_history" not in tables(tmp_path)
    assert "stream 'notes': no history table" in caplog.text


def test_step_after_incremental_sees_filtered_batches_and_adds_items(tmp_path: Path) -> None:
    """Fails loudly when a dlt release moves what `compat.add_step_after_incremental` needs."""
    calls: list[str] = []
    end: list[dict[str, Any]] = []

    @dlt.resource(
        name="numbers",
        primary_key="n",
        incremental=dlt.sources.incremental("n", initial_value=5),
    )
    def numbers() -> Any:
        calls.append("first batch yielded")
        yield [{"n": i} for i in range(10)]
        calls.append("second batch yielded")
        yield [{"n": i} for i in range(10, 12)]
        yield end  # an empty list passes the incremental filter untouched

    seen: list[list[int]] = []

    def step(items: Any, meta: Any) -> Any:
        if items is end:
            calls.append("end")
            total = {"n": 0, "total": sum(map(len, seen))}  # (the resource's key)
            return iter([dlt.mark.with_table_name([total], "totals")])
        seen.append([row["n"] for row in items])
        calls.append(f"step {len(seen)}")
        extra = dlt.mark.with_table_name([{"n": row["n"] * 100} for row in items], "hundreds")
        return iter([items, extra])

    resource = numbers()
    compat.add_step_after_incremental(resource, step)
    pipeline = dlt.pipeline(
        "compat_step",
        destination=dlt.destinations.duckdb(str(tmp_path / "step.duckdb")),
        pipelines_dir=str(tmp_path / "p"),
        dataset_name="d",
    )
    pipeline.run(resource)
    assert seen == [[5, 6, 7, 8, 9], [10, 11]]  # after the incremental filter
    assert calls == ["first batch yielded", "step 1", "second batch yielded", "step 2", "end"]
    with pipeline.sql_client() as client:
        assert client.execute_sql("select n from numbers order by 1") == [
            (n,) for n in range(5, 12)
        ]
        assert client.execute_sql("select n from hundreds order by 1") == [
            (n * 100,) for n in range(5, 12)
        ]
        assert client.execute_sql("select total from totals") == [(7,)]


def test_the_environments_file_turns_history_on_per_environment(
    fakes: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`history: true` in the file for a; b takes the command line's `--history`."""
    a, b = fakes
    write_environments(tmp_path, entry("a", a, "KEY_A", history=True), entry("b", b, "KEY_B"))
    keys = {"KEY_A": KEY_A, "KEY_B": KEY_B}
    first = bridge(tmp_path, "run", "--environment", "all", keys=keys)
    assert first.returncode == 0, first.stderr[-3000:]
    use(monkeypatch, "a")
    assert {f"{s.name}_history" for s in STREAMS} <= tables(tmp_path)
    use(monkeypatch, "b")
    assert not any(t.endswith("_history") for t in tables(tmp_path))
    second = bridge(tmp_path, "run", "--environment", "b", "--history", keys=keys)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {f"{s.name}_history" for s in STREAMS} <= tables(tmp_path)  # history starts on b
