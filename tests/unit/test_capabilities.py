"""SDK capabilities still work beside the fast record path: maps, flattening, selection, batch."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import config, mock_api, run_tap, serve_everything


def test_stream_maps_transform_and_filter_records() -> None:
    maps = {
        "applications": {"name": "str(name).upper()", "__filter__": "id != 'app_000001'"},
        "tokens": None,  # remove the stream entirely
    }
    with mock_api() as api:
        serve_everything(api, apps=3)
        out = run_tap(config(stream_maps=maps))
    apps = out.records("applications")
    assert [a["id"] for a in apps] == ["app_000000", "app_000002"]
    assert apps[0]["name"] == "NAME-0"
    assert out.records("tokens") == []
    # as in any singer-sdk tap, a parent filtered out by a map has its children skipped
    assert {e["app_id"] for e in out.records("endpoints")} == {"app_000000", "app_000002"}


def test_flattening_turns_free_form_objects_into_json_text() -> None:
    """`metadata` has no declared properties, so the SDK's flattener serialises it."""
    with mock_api() as api:
        serve_everything(api, apps=1)
        out = run_tap(config(flattening_enabled=True, flattening_max_depth=1))
    app = out.records("applications")[0]
    assert json.loads(app["metadata"]) == {"team": "t0", "tier": "gold"}
    schema = next(m for m in out.of_type("SCHEMA") if m["stream"] == "applications")["schema"]
    assert schema["properties"]["metadata"]["type"] == ["string", "null"]


def test_deselected_property_is_left_out() -> None:
    catalog = TapAnalytics(config=None, parse_env_config=False, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "applications":
            entry["metadata"].append(
                {"breadcrumb": ["properties", "metadata"], "metadata": {"selected": False}}
            )
    with mock_api() as api:
        serve_everything(api, apps=2)
        out = run_tap(config(), catalog=catalog)
    assert out.records("applications") and all(
        "metadata" not in a for a in out.records("applications")
    )
    assert "metadata" in out.records("endpoints")[0]  # other streams untouched


def test_batch_messages_carry_only_new_records(tmp_path: Path) -> None:
    batch = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}", "prefix": "batch-"},
    }
    with mock_api() as api:
        serve_everything(api, apps=3)
        first = run_tap(config(batch_config=batch))
        assert first.of_type("RECORD") == []
        api.lists["/v1/app"][1]["updatedAt"] = "2030-01-01T00:00:00Z"
        second = run_tap(config(batch_config=batch), state=first.last_state)

    def batch_ids(out, stream: str) -> list[str]:
        ids = []
        for message in out.of_type("BATCH"):
            if message["stream"] == stream:
                for url in message["manifest"]:
                    with gzip.open(url.removeprefix("file://"), "rt") as handle:
                        ids += [json.loads(line)["id"] for line in handle]
        return ids

    assert len(batch_ids(first, "applications")) == 3
    assert batch_ids(second, "applications") == ["app_000001"]
    assert batch_ids(second, "endpoints") == []
