"""Discovery (snapshot, keys, parents), stream selection, and a primary-key test that can fail."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from analytics_api.streams import STREAMS
from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import config, mock_api, run_tap, serve_everything

SNAPSHOT = Path(__file__).parent / "snapshots" / "catalog.json"


def test_primary_keys_are_unique_in_every_stream() -> None:
    """The SDK's built-in primary-key test cannot fail on duplicates; this one can."""
    with mock_api() as api:
        serve_everything(api, apps=4, per_app=5, sources=3)
        out = run_tap(config(page_size=2, max_concurrency=4))
    for stream in STREAMS:
        keys = [r[stream.primary_key] for r in out.records(stream.name)]
        assert keys, f"{stream.name}: no records to check"
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert not duplicates, f"{stream.name}: duplicate keys {duplicates[:5]}"


def test_key_uniqueness_check_catches_a_duplicate() -> None:
    """The check above is real: the same id served twice shows up twice."""
    with mock_api() as api:
        serve_everything(api, apps=2)
        api.lists["/v1/app"].append(dict(api.lists["/v1/app"][0]))
        out = run_tap(config())
    keys = [r["id"] for r in out.records("applications")]
    assert len(keys) != len(set(keys))


def _discovered_catalog() -> dict:
    tap = TapAnalytics(config=None, parse_env_config=False, validate_config=False)
    return tap.catalog_dict


def test_discovered_catalog_matches_snapshot(update_snapshots: bool) -> None:
    """Any schema or metadata change shows up in review.

    Refresh on purpose only: `UPDATE_SNAPSHOTS=1 pytest tests/unit/test_catalog.py` (or
    `--update-snapshots`). A missing snapshot fails instead of being written silently.
    """
    catalog = _discovered_catalog()
    text = json.dumps(catalog, indent=2, sort_keys=True) + "\n"
    if update_snapshots:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    if not SNAPSHOT.exists():
        pytest.fail(
            f"catalog snapshot {SNAPSHOT} is missing; create it on purpose with "
            "UPDATE_SNAPSHOTS=1 (or --update-snapshots) and review the file"
        )
    assert text == SNAPSHOT.read_text(), (
        "the discovered catalog differs from the snapshot; if the change is intended, rerun "
        "with UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_catalog_lists_keys_replication_keys_and_parents() -> None:
    entries = {s["tap_stream_id"]: s for s in _discovered_catalog()["streams"]}
    assert set(entries) == {s.name for s in STREAMS}
    for stream in STREAMS:
        entry = entries[stream.name]
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert entry["key_properties"] == [stream.primary_key]
        assert entry["replication_key"] == stream.replication_key
        assert root.get("parent-tap-stream-id") == stream.parent
        props = entry["schema"]["properties"]
        assert props[stream.primary_key]["type"] == "string"  # the key is never nullable
        if stream.parent_key:
            assert stream.parent_key in props


def test_selecting_a_child_alone_emits_only_the_child() -> None:
    catalog = _discovered_catalog()
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] == "endpoints"
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=2)
        out = run_tap(config(), catalog=catalog)
    streams = {m["stream"] for m in out.messages if m["type"] in ("RECORD", "SCHEMA")}
    assert streams == {"endpoints"}
    assert len(out.records("endpoints")) == 6
