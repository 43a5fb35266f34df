"""The native source follows the stream definitions, the tap's catalog and the bridge's columns.

One place to change a stream (`analytics_api.streams` + its JSON schema); these tests fail when
the built dlt source, the Singer catalog and the bridge's column mapping stop agreeing.
"""

from __future__ import annotations

from typing import Any

import pytest
from dlt.sources import DltSource
from dlt.sources import incremental as Incremental

import dlt_bridge  # noqa: F401  (telemetry off by default)
from analytics_api.streams import STREAMS
from analytics_api.timestamps import latest_timestamp
from analytics_dlt.hints import MAX_TABLE_NESTING, columns_from_json_schema
from analytics_source import SOURCE_NAME, analytics_source
from tap_analytics.tap import TapAnalytics

BASE_URL = "https://api.example.com"


@pytest.fixture(scope="module")
def source() -> DltSource:
    return analytics_source(BASE_URL, "k", start_date="2024-01-01T00:00:00Z")


def declared_columns(source: DltSource, stream: str) -> dict[str, Any]:
    """The table's column hints, without the `incremental` mark dlt adds to the cursor column."""
    columns = source.resources[stream].compute_table_schema()["columns"]
    return {n: {k: v for k, v in c.items() if k != "incremental"} for n, c in columns.items()}


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    tap = TapAnalytics(config=None, parse_env_config=False, validate_config=False)
    return {s["tap_stream_id"]: s for s in tap.catalog_dict["streams"]}


def test_one_resource_per_stream_all_selected(source: DltSource) -> None:
    assert source.name == SOURCE_NAME
    assert source.max_table_nesting == MAX_TABLE_NESTING == 0
    assert list(source.resources) == [s.name for s in STREAMS]
    assert set(source.resources.selected) == {s.name for s in STREAMS}


def test_tables_follow_the_definitions(source: DltSource) -> None:
    for stream in STREAMS:
        resource = source.resources[stream.name]
        table = resource.compute_table_schema()
        assert table["name"] == stream.name
        assert table["write_disposition"] == "merge"
        assert table["x-merge-strategy"] == "delete-insert"  # type: ignore[typeddict-item]
        expected = columns_from_json_schema(stream.schema, [stream.primary_key])
        assert declared_columns(source, stream.name) == expected
        assert [c for c, h in table["columns"].items() if h.get("primary_key")] == [
            stream.primary_key
        ]
        assert [c for c, h in table["columns"].items() if h.get("incremental")] == [
            stream.replication_key
        ]
        # children scan their parent themselves: no transformer, no parent-filtered feed
        assert not resource.is_transformer
        if stream.parent_key:
            # the parent id lands in a column the JSON schema declares
            assert stream.parent_key in stream.schema["properties"]


def test_every_stream_is_incremental_on_its_replication_key(source: DltSource) -> None:
    for stream in STREAMS:
        incremental = source.resources[stream.name].incremental
        assert isinstance(incremental, Incremental), stream.name
        assert incremental.cursor_path == stream.replication_key
        assert incremental.last_value_func is latest_timestamp
        assert incremental.primary_key == stream.primary_key
        assert incremental.initial_value == "2024-01-01T00:00:00.000000000Z"


def test_native_columns_equal_the_bridge_columns_from_the_tap_catalog(
    source: DltSource, catalog: dict[str, Any]
) -> None:
    """What the bridge builds from the tap's SCHEMA messages is what the native source declares."""
    assert set(catalog) == {s.name for s in STREAMS}
    for stream in STREAMS:
        entry = catalog[stream.name]
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert entry["key_properties"] == [stream.primary_key]
        assert entry["replication_key"] == stream.replication_key
        assert root.get("parent-tap-stream-id") == stream.parent
        bridge = columns_from_json_schema(entry["schema"], entry["key_properties"])
        assert declared_columns(source, stream.name) == bridge, stream.name


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"base_url": "https://api.example.com/v1"}, "base_url"),
        ({"base_url": "ftp://api.example.com"}, "base_url"),
        ({"api_key": "key with space"}, "api_key"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_factor": 1000}, "backoff_factor"),
        ({"request_timeout": 3601}, "request_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"deletes": "purge"}, "deletes"),
    ],
)
def test_bad_settings_are_refused_without_quoting_them(
    kwargs: dict[str, Any], setting: str
) -> None:
    arguments = {"base_url": BASE_URL, "api_key": "k", **kwargs}
    with pytest.raises(ValueError) as info:
        analytics_source(**arguments)
    assert f"'{setting}'" in str(info.value)
    if setting == "api_key":
        assert "key with space" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        analytics_source("ftp://x", "k", page_size=0, backoff_factor=-1, deletes="x")
    named = [p.split("'")[1] for p in str(info.value).split("setting ")[1:]]
    assert named == ["base_url", "page_size", "backoff_factor", "deletes"]
