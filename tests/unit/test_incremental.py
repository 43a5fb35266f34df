"""Bookmarks: only changed records on the next run, children under unchanged parents included."""

from __future__ import annotations

import logging

import pytest

from analytics_api.streams import STREAMS
from analytics_api.timestamps import TimestampError, canonical
from tests.unit.mockapi import config, mock_api, run_tap, serve_everything


def _touch(api, path: str, index: int, when: str, field: str = "name") -> str:
    record = api.lists[path][index]
    record["updatedAt"] = when
    record[field] = "changed"
    return record["id"]


def test_second_run_emits_only_changed_records() -> None:
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=4)
        first = run_tap(config(page_size=2))
        assert len(first.records("endpoints")) == 12

        # an endpoint under an application that did NOT change
        ep = _touch(api, "/v1/app/app_000001/endpoint", 2, "2025-06-01T00:00:00.5Z", "url")
        app = _touch(api, "/v1/app", 0, "2025-06-01T00:00:00+00:00")
        integ = _touch(api, "/v1/app/app_000002/integration", 0, "2025-06-01T00:00:00.000000001Z")
        second = run_tap(config(page_size=2), state=first.last_state)

    assert [r["id"] for r in second.records("endpoints")] == [ep]
    assert second.records("endpoints")[0]["url"] == "changed"
    assert [r["id"] for r in second.records("applications")] == [app]
    assert [r["id"] for r in second.records("integrations")] == [integ]
    for stream in [
        "event_types",
        "tokens",
        "ingest_source",
        "ingest_source_endpoint",
        "webhook_endpoint",
    ]:
        assert second.records(stream) == []
    # the bookmark moved to the newest value, compared as time, not as text
    bookmarks = second.last_state["bookmarks"]
    assert bookmarks["endpoints"]["replication_key_value"] == "2025-06-01T00:00:00.500000000Z"
    assert bookmarks["integrations"]["replication_key_value"] == "2025-06-01T00:00:00.000000001Z"


def test_third_run_without_changes_emits_nothing_and_keeps_state() -> None:
    with mock_api() as api:
        serve_everything(api)
        first = run_tap(config())
        second = run_tap(config(), state=first.last_state)
        third = run_tap(config(), state=second.last_state)
    assert second.of_type("RECORD") == [] == third.of_type("RECORD")
    assert third.last_state["bookmarks"] == first.last_state["bookmarks"]


def test_bookmarks_compare_as_time_across_formats() -> None:
    """`...:00Z` and `...:00.5Z`: as text the first sorts last; as time it is earlier."""
    with mock_api() as api:
        serve_everything(api, apps=1, per_app=1)
        api.lists["/v1/app"][:] = [
            {"id": "app_000000", "updatedAt": "2024-05-01T10:00:00.5Z"},
        ]
        state = {
            "bookmarks": {
                "applications": {
                    "replication_key": "updatedAt",
                    "replication_key_value": "2024-05-01T10:00:00Z",
                }
            }
        }
        out = run_tap(config(), state=state)
        assert [r["id"] for r in out.records("applications")] == ["app_000000"]

        state["bookmarks"]["applications"]["replication_key_value"] = "2024-05-01T12:00:00.5+02:00"
        out = run_tap(config(), state=state)
        assert out.records("applications") == []  # same instant, already emitted


def test_start_date_is_inclusive_and_state_wins_when_later() -> None:
    with mock_api() as api:
        serve_everything(api, apps=3)
        cutoff = api.lists["/v1/app"][1]["updatedAt"]
        out = run_tap(config(start_date=cutoff))
        ids = [r["id"] for r in out.records("applications")]
    assert ids == [
        r["id"] for r in api.lists["/v1/app"] if canonical(r["updatedAt"]) >= canonical(cutoff)
    ]
    assert "app_000001" in ids


def test_no_state_no_start_date_is_a_full_sync() -> None:
    with mock_api() as api:
        serve_everything(api, apps=2)
        out = run_tap(config())
    assert len(out.records("applications")) == 2


def test_state_does_not_grow_with_the_number_of_parents() -> None:
    sizes = []
    for apps in (5, 50):
        with mock_api() as api:
            serve_everything(api, apps=apps, per_app=2)
            out = run_tap(config())
        import json

        sizes.append(len(json.dumps(out.last_state)))
        assert "partitions" not in json.dumps(out.last_state)
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000000Z"),
        ("2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.100000000Z"),
        ("2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.123456789Z"),
        ("2024-01-02T03:04:05.123+00:00", "2024-01-02T03:04:05.123000000Z"),
        ("2024-01-02T03:04:05+02:00", "2024-01-02T01:04:05.000000000Z"),
        ("2024-01-02T00:30:00-01:30", "2024-01-02T02:00:00.000000000Z"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05.000000000Z"),
        ("2024-01-02", "2024-01-02T00:00:00.000000000Z"),
    ],
)
def test_canonical_timestamps(value: str, expected: str) -> None:
    assert canonical(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45T00:00:00Z", "", "2024-01-02T25:00:00Z"])
def test_canonical_rejects_non_timestamps(value: str) -> None:
    with pytest.raises(TimestampError):
        canonical(value)


def _record_counts(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """The `record_count` METRIC values logged per stream."""
    counts: dict[str, int] = {}
    for log in caplog.records:
        point = log.args[0] if isinstance(log.args, tuple) and log.args else None
        if log.name == "singer_sdk.metrics" and getattr(point, "metric", None) == "record_count":
            stream = point.tags["stream"]
            counts[stream] = counts.get(stream, 0) + point.value
    return counts


def test_record_count_metric_counts_emitted_records_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=4)
        first = run_tap(config())
        assert _record_counts(caplog) == {s.name: len(first.records(s.name)) for s in STREAMS}

        caplog.clear()
        second = run_tap(config(), state=first.last_state)
        assert second.of_type("RECORD") == []
        assert _record_counts(caplog) == {s.name: 0 for s in STREAMS}
        # what was read is reported apart from the metric
        assert "stream 'endpoints': 12 records read, 0 emitted" in caplog.text
        assert "stream 'applications': 3 records read, 0 emitted" in caplog.text

        ep = _touch(api, "/v1/app/app_000001/endpoint", 0, "2030-01-01T00:00:00Z", "url")
        caplog.clear()
        third = run_tap(config(), state=second.last_state)
    assert [r["id"] for r in third.records("endpoints")] == [ep]
    assert _record_counts(caplog) == {s.name: int(s.name == "endpoints") for s in STREAMS}
