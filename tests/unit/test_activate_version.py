"""FULL_TABLE and ACTIVATE_VERSION in-process, against the fake API: modes per stream, streams
without records, stream maps, deselected parents, the setting's check."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from analytics_api.streams import STREAMS, STREAMS_BY_NAME
from fake_api import FakeAPI
from tap_analytics.tap import TapAnalytics

NAMES = [s.name for s in STREAMS]


def catalog(full_table: tuple[str, ...] = tuple(NAMES), selected: tuple[str, ...] = tuple(NAMES)):
    result = TapAnalytics(config=None, parse_env_config=False, validate_config=False).catalog_dict
    for entry in result["streams"]:
        name = entry["tap_stream_id"]
        if name in full_table:
            entry["replication_method"] = "FULL_TABLE"
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = name in selected
    return result


def run(
    api: FakeAPI,
    *,
    cat: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """A full sync in this process; the Singer messages it wrote."""
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    config = {"api_key": api.token, "base_url": api.url, **settings}
    tap = TapAnalytics(config=config, state=state, catalog=cat, parse_env_config=False)
    old, sys.stdout = sys.stdout, stdout
    try:
        tap.sync_all()
    finally:
        tap.message_writer.flush()  # type: ignore[attr-defined]
        stdout.flush()
        sys.stdout = old
    return [json.loads(line) for line in buffer.getvalue().decode().splitlines() if line]


def of(messages: list[dict[str, Any]], kind: str, stream: str | None = None) -> list[dict]:
    return [m for m in messages if m["type"] == kind and (stream is None or m["stream"] == stream)]


def keys(messages: list[dict[str, Any]], stream: str) -> list[str]:
    pk = STREAMS_BY_NAME[stream].primary_key
    return [m["record"][pk] for m in of(messages, "RECORD", stream)]


def dump_keys(api: FakeAPI, stream: str) -> list[str]:
    pk = STREAMS_BY_NAME[stream].primary_key
    return [r[pk] for r in api.dump(stream)]


def last_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return of(messages, "STATE")[-1]["value"]


def test_full_table_child_under_an_incremental_parent(fake_api: FakeAPI) -> None:
    """Only endpoints FULL_TABLE: after an incremental run, applications send nothing new,
    endpoints send every record (children of unchanged parents too) and one activation."""
    first = run(fake_api)
    messages = run(
        fake_api,
        cat=catalog(full_table=("endpoints",)),
        state=last_state(first),
        emit_activate_version_messages=True,
    )
    assert keys(messages, "applications") == []
    assert keys(messages, "endpoints") == dump_keys(fake_api, "endpoints")
    assert [m["stream"] for m in of(messages, "ACTIVATE_VERSION")] == ["endpoints"]
    version = of(messages, "ACTIVATE_VERSION")[0]["version"]
    assert {m.get("version") for m in of(messages, "RECORD", "endpoints")} == {version}
    assert all("version" not in m for m in of(messages, "RECORD", "integrations"))


def test_full_table_without_the_setting_sends_everything_and_no_version(
    fake_api: FakeAPI,
) -> None:
    state = last_state(run(fake_api))
    messages = run(fake_api, cat=catalog(), state=state)
    for name in NAMES:
        assert keys(messages, name) == dump_keys(fake_api, name), name
    assert of(messages, "ACTIVATE_VERSION") == []
    assert all("version" not in m for m in of(messages, "RECORD"))


def test_every_record_deleted_still_activates_every_stream_after_its_schema(
    fake_api: FakeAPI,
) -> None:
    """Nothing left upstream: each stream's version is empty, so a target empties the table.
    Child streams were never synced (no parent): their SCHEMA is sent before the activation."""
    fake_api.delete_records(share=1.0)
    messages = run(fake_api, cat=catalog(), emit_activate_version_messages=True)
    assert of(messages, "RECORD") == []
    for name in NAMES:
        kinds = [m["type"] for m in messages if m.get("stream") == name]
        assert kinds == ["SCHEMA", "ACTIVATE_VERSION"], name
    assert len({m["version"] for m in of(messages, "ACTIVATE_VERSION")}) == 1


def test_activation_follows_stream_maps(fake_api: FakeAPI) -> None:
    maps = {"applications": {"__alias__": "apps"}, "tokens": None}
    messages = run(fake_api, cat=catalog(), emit_activate_version_messages=True, stream_maps=maps)
    streams = [m["stream"] for m in of(messages, "ACTIVATE_VERSION")]
    assert "apps" in streams and "applications" not in streams and "tokens" not in streams
    assert sorted(streams) == sorted(["apps", *(n for n in NAMES if n not in maps)])


def test_deselected_parent_selected_child(fake_api: FakeAPI) -> None:
    selected = tuple(n for n in NAMES if n != "applications")
    messages = run(fake_api, cat=catalog(selected=selected), emit_activate_version_messages=True)
    streams = {m["stream"] for m in of(messages, "ACTIVATE_VERSION")}
    assert "applications" not in streams and {"endpoints", "integrations"} <= streams
    assert keys(messages, "endpoints") == dump_keys(fake_api, "endpoints")


def test_state_is_the_same_whatever_the_version(fake_api: FakeAPI) -> None:
    """FULL_TABLE keeps no bookmark: the state names the streams and nothing per parent."""
    messages = run(fake_api, cat=catalog(), emit_activate_version_messages=True)
    assert last_state(messages) == {"bookmarks": {name: {} for name in NAMES}}


@pytest.mark.parametrize("value", ["yes", 1])
def test_the_setting_must_be_a_boolean(value: Any) -> None:
    config = {"api_key": "k", "base_url": "https://api.example.com"}
    with pytest.raises(ConfigValidationError) as info:
        TapAnalytics(
            config={**config, "emit_activate_version_messages": value}, parse_env_config=False
        )
    assert any("emit_activate_version_messages" in e for e in info.value.errors)
