"""The native source follows the stream definitions, the tap's catalog and the bridge's columns.

One place to change a stream (`analytics_api.streams` + its JSON schema); these tests fail
when the generated `rest_api` configuration, the built dlt source, the Singer catalog and the
bridge's column mapping stop agreeing.
"""

from __future__ import annotations

from typing import Any

import pytest
from dlt.extract.incremental import Incremental

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from analytics_source.hints import (
    MAX_TABLE_NESTING,
    columns_from_json_schema,
    table_hints,
    write_disposition_for,
)
from dlt_bridge.native import (
    MAX_PAGE_SIZE,
    PAGINATOR_NAME,
    RETRY_STATUSES,
    SOURCE_NAME,
    analytics_rest_api_config,
    build_analytics_source,
    latest_timestamp,
    scan_resource_name,
)
from tap_analytics.tap import TapAnalytics

BASE_URL = "https://api.example.com"


@pytest.fixture(scope="module")
def config() -> Any:
    return analytics_rest_api_config(BASE_URL, "k", page_size=123)


@pytest.fixture(scope="module")
def resources(config: Any) -> dict[str, Any]:
    return {r["name"]: r for r in config["resources"]}


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    tap = TapAnalytics(config=None, parse_env_config=False, validate_config=False)
    return {s["tap_stream_id"]: s for s in tap.catalog_dict["streams"]}


def test_one_resource_per_stream_plus_one_scan_per_parent(resources: dict[str, Any]) -> None:
    parents = {s.parent for s in STREAMS if s.parent}
    assert set(resources) == {s.name for s in STREAMS} | {scan_resource_name(p) for p in parents}
    for parent in parents:
        scan = resources[scan_resource_name(parent)]
        assert scan["selected"] is False
        assert scan["endpoint"]["path"] == STREAMS_BY_NAME[parent].path
        assert scan["endpoint"]["params"] == STREAMS_BY_NAME[parent].params


def test_resources_follow_the_definitions(resources: dict[str, Any]) -> None:
    for stream in STREAMS:
        resource = resources[stream.name]
        endpoint = resource["endpoint"]
        assert resource["table_name"] == stream.name
        assert endpoint["path"] == stream.path
        assert resource["primary_key"] == [stream.primary_key]
        assert resource["write_disposition"] == write_disposition_for([stream.primary_key])
        assert resource["columns"] == columns_from_json_schema(stream.schema, [stream.primary_key])
        assert (
            resource["columns"]
            == table_hints(stream.name, stream.schema, [stream.primary_key])["columns"]
        )
        params = dict(endpoint["params"])
        if stream.parent:
            parent = STREAMS_BY_NAME[stream.parent]
            assert params.pop(stream.parent_key) == {
                "type": "resolve",
                "resource": scan_resource_name(parent.name),
                "field": parent.primary_key,
            }
            assert "{" + str(stream.parent_key) + "}" in stream.path
            assert resource["include_from_parent"] == [parent.primary_key]
            assert endpoint["response_actions"] == [{"status_code": 404, "action": "ignore"}]
            # the parent id lands in a column the JSON schema declares
            assert stream.parent_key in stream.schema["properties"]
        else:
            assert "response_actions" not in endpoint
        assert params == stream.params


def test_defaults_name_the_registered_paginator(config: Any) -> None:
    endpoint = config["resource_defaults"]["endpoint"]
    assert str(endpoint["data_selector"]) == "data"  # compiled once (jsonpath)
    assert endpoint["paginator"] == {"type": PAGINATOR_NAME, "limit": 123}
    assert config["client"]["base_url"] == BASE_URL
    assert config["client"]["auth"] == {"type": "bearer", "token": "k"}


def test_native_columns_equal_the_bridge_columns_from_the_tap_catalog(
    resources: dict[str, Any], catalog: dict[str, Any]
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
        assert resources[stream.name]["columns"] == bridge, stream.name


def test_built_source_has_hints_and_incremental_for_every_stream() -> None:
    source = build_analytics_source(BASE_URL, "k", start_date="2024-01-01T00:00:00Z")
    assert source.name == SOURCE_NAME
    assert source.max_table_nesting == MAX_TABLE_NESTING == 0
    assert set(source.resources.selected) == {s.name for s in STREAMS}
    for stream in STREAMS:
        resource = source.resources[stream.name]
        table = resource.compute_table_schema()
        assert table["name"] == stream.name
        assert table["write_disposition"] == "merge"
        assert table["x-merge-strategy"] == "delete-insert"  # type: ignore[typeddict-item]
        assert table["columns"] == columns_from_json_schema(stream.schema, [stream.primary_key])
        steps = [s for s in resource._pipe.steps if isinstance(s, Incremental)]
        assert len(steps) == 1, stream.name
        incremental = steps[0]
        assert incremental.cursor_path == stream.replication_key
        assert incremental.last_value_func is latest_timestamp
        assert incremental.primary_key == stream.primary_key
        assert incremental.initial_value == "2024-01-01T00:00:00.000000000Z"
        assert resource.is_transformer == stream.is_child


def test_constants_agree_with_the_tap() -> None:
    from analytics_api.retry import RETRY_STATUSES as TAP_RETRY_STATUSES
    from tap_analytics.settings import MAX_PAGE_SIZE as TAP_MAX_PAGE_SIZE

    assert frozenset(RETRY_STATUSES) == TAP_RETRY_STATUSES
    assert MAX_PAGE_SIZE == TAP_MAX_PAGE_SIZE
