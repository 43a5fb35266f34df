"""The pure parts of history tables (`analytics_dlt.history`): names, hints, a version's instant
and hash, which column dates a version, the report, and the target-dlt setting. The runs
themselves: tests/e2e/test_history*.py."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from analytics_api.settings import SETTINGS_BY_NAME
from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_dlt.deletions import with_deleted_at
from analytics_dlt.hints import SEQUENCE_COLUMN, columns_from_json_schema, table_hints
from analytics_dlt.history import (
    VALID_FROM,
    VALID_TO,
    VERSION_HASH,
    HistoryCounts,
    VersionHasher,
    history_hints,
    history_table_name,
    instant,
    is_history_table,
    microsecond_text,
    version_column,
)

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000000"),
        ("2024-05-06T07:08:09.123Z", "2024-05-06T07:08:09.123000"),
        ("2024-05-06T07:08:09.123456Z", "2024-05-06T07:08:09.123456"),
        ("2024-05-06T07:08:09.123456789Z", "2024-05-06T07:08:09.123456"),  # truncated, as dlt
        ("2024-05-06T09:08:09.5+02:00", "2024-05-06T07:08:09.500000"),
        ("2024-05-06 07:08:09.5z", "2024-05-06T07:08:09.500000"),
    ],
)
def test_a_timestamp_counts_to_the_microsecond_in_utc(text: str, expected: str) -> None:
    assert microsecond_text(text) == expected
    assert instant(text) == dt.datetime.fromisoformat(expected + "+00:00")


def test_an_instant_compares_with_what_a_destination_returns() -> None:
    stored = dt.datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert instant("2024-05-06T07:08:09.123456789Z") == stored
    assert instant(stored) == stored
    assert instant(dt.datetime(2024, 5, 6, 7, 8, 9)) == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _endpoint(**changes: Any) -> dict[str, Any]:
    record = {
        "id": "ep_1",
        "app_id": "app_1",
        "url": "https://x.example/a",
        "version": 1,
        "disabled": False,
        "metadata": {"b": "2", "a": "1"},
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-02T00:00:00.123456789Z",
    }
    return {**record, **changes}


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a destination returns it: column names, datetimes, JSON decoded."""
    return {
        "id": record["id"],
        "app_id": record["app_id"],
        "url": record["url"],
        "description": None,
        "version": record["version"],
        "disabled": record["disabled"],
        "metadata": dict(reversed(list(record["metadata"].items()))),
        "created_at": instant(record["createdAt"]),
        "updated_at": instant(record["updatedAt"]).astimezone(dt.timezone(dt.timedelta(hours=-5))),
        "_sdc_sequence": 42,
        "_dlt_id": "x",
    }


def test_the_hash_of_a_record_is_the_hash_of_its_stored_row() -> None:
    columns = columns_from_json_schema(STREAMS_BY_NAME["endpoints"].schema, ["id"])
    hasher = VersionHasher(columns)
    record = _endpoint()
    assert hasher.of_record(record) == hasher.of_stored(_stored(record))
    assert hasher.of_record({**record, "_sdc_sequence": 7}) == hasher.of_record(record)
    assert hasher.of_record({**record, "unknownField": 1}) == hasher.of_record(record)
    assert hasher.of_record({**record, "description": None}) == hasher.of_record(record)
    for changed in ({"url": "https://x.example/b"}, {"metadata": {"a": "1"}}, {"disabled": True}):
        assert hasher.of_record(_endpoint(**changed)) != hasher.of_record(record), changed
    assert -(2**63) <= hasher.of_record(record) < 2**63  # a bigint


def test_the_hash_takes_a_double_columns_integer_as_a_float() -> None:
    hasher = VersionHasher({"id": {"data_type": "text"}, "rate": {"data_type": "double"}})
    assert hasher.of_record({"id": "a", "rate": 2}) == hasher.of_stored({"id": "a", "rate": 2.0})
    assert hasher.of_record({"id": "a", "rate": True}) != hasher.of_record({"id": "a", "rate": 1})


@pytest.mark.parametrize("mode", ["off", "soft", "hard"])
def test_history_hints_are_the_records_columns_then_ours(mode: str) -> None:
    for stream in STREAMS:
        current = table_hints(stream.name, stream.schema, [stream.primary_key])
        hints = with_deleted_at(current, mode)  # type: ignore[arg-type]
        history = history_hints(stream.name, hints["columns"], stream.primary_key)
        assert history["table_name"] == history_table_name(stream.name) == stream.name + "_history"
        assert is_history_table(history["table_name"]) and not is_history_table(stream.name)
        assert history["primary_key"] == [stream.primary_key, VALID_FROM]
        assert history["write_disposition"] == {"disposition": "merge", "strategy": "delete-insert"}
        columns = history["columns"]
        properties = list(stream.schema["properties"])
        assert list(columns) == [*properties, VALID_FROM, VALID_TO, VERSION_HASH, SEQUENCE_COLUMN]
        assert [n for n, c in columns.items() if c.get("primary_key")] == [
            stream.primary_key,
            VALID_FROM,
        ]
        assert columns[stream.primary_key]["nullable"] is False
        assert columns[VALID_FROM]["nullable"] is False
        assert columns[VALID_TO]["nullable"] is True
        for name in (VALID_FROM, VALID_TO):
            assert columns[name]["data_type"] == "timestamp" and columns[name]["timezone"]
        assert columns[SEQUENCE_COLUMN]["dedup_sort"] == "desc"
        for name in properties:  # the same types as the current table
            assert columns[name]["data_type"] == hints["columns"][name]["data_type"], name
        assert hints["columns"][stream.primary_key]["primary_key"]  # the current hints unchanged


def test_a_version_is_dated_by_the_replication_key() -> None:
    for stream in STREAMS:
        properties = stream.schema["properties"]
        assert version_column(stream.name, properties) == stream.replication_key
    assert version_column("tokens", ["id", "createdAt"]) == "createdAt"
    assert version_column("other", ["id", "modified"], ["modified"]) == "modified"
    assert version_column("other", ["id", "modified"]) is None  # nothing dates it
    assert version_column("applications", ["id", "updatedAt"], ["missing"]) == "updatedAt"


def test_the_report_counts_and_names_a_few_keys(caplog: pytest.LogCaptureFixture) -> None:
    counts = HistoryCounts(opened=3, closed=2, gone=1, started=5)
    counts.changed_in_place = ["a", "b", "c", "d"]
    counts.older = ["z"]
    logger = logging.getLogger("test_history_report")
    with caplog.at_level(logging.INFO, logger="test_history_report"):
        counts.report(logger, "endpoints", "updatedAt")
    info, *warnings = caplog.records
    assert info.levelno == logging.INFO
    assert info.getMessage() == (
        "stream 'endpoints' history: 3 new version(s), 2 closed by a newer one, 1 closed as"
        " deleted, 5 taken from the current table (history starts)"
    )
    assert [w.levelno for w in warnings] == [logging.WARNING, logging.WARNING]
    assert "4 record(s) changed without a new 'updatedAt' (e.g. 'a', 'b', 'c', ...)" in (
        warnings[0].getMessage()
    )
    assert "1 record(s) arrived with a 'updatedAt' older" in warnings[1].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test_history_report"):
        HistoryCounts(unchanged=10).report(logger, "endpoints", "updatedAt")
    assert not caplog.records  # nothing new: nothing said
    with caplog.at_level(logging.DEBUG, logger="test_history_report"):
        HistoryCounts(opened=3, closed=2).report(logger, "endpoints", "updatedAt")
    # a run that does not start history: its counts are in the run's summary, not at INFO
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def _target_dlt() -> Any:
    spec = importlib.util.spec_from_file_location(
        "meltano_target_dlt", ROOT / "plugins" / "target-dlt" / "meltano_target_dlt.py"
    )
    assert spec is not None and spec.loader is not None
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    return shim


def test_target_dlt_takes_history_and_passes_it_to_dlt_bridge_load() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (plugin,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-dlt"]
    declared = {d["name"]: d for d in plugin["settings"]}["history"]
    setting = SETTINGS_BY_NAME["history"]
    assert declared["kind"] == "boolean" and declared["value"] is setting.default is False
    assert declared["label"] == setting.title

    from dlt_bridge.args import build_parser

    shim = _target_dlt()
    for value, flag in ((True, True), ("true", True), (False, False), (None, False)):
        argv = shim.bridge_argv({"history": value})
        assert ("--history" in argv) is flag, value
        assert build_parser().parse_args(argv).history is flag
