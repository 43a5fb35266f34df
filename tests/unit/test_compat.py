"""The singer-sdk internals the tap relies on (all in `tap_analytics.compat`) still behave.

Each test names the hook it covers, so an SDK upgrade that changes one fails loudly here
instead of silently changing the tap's output.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from singer_sdk import Stream, Tap, metrics
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib.messages import RecordMessage

import tap_analytics
from tap_analytics.compat import (
    PRIVATE_HOOKS,
    PROGRESS_MARKERS,
    UNSORTED_NOTE,
    CompatStream,
    ConfigFileError,
    PrivateHook,
)
from tap_analytics.tap import TapAnalytics
from tests.unit.mockapi import config, make_records, mock_api, run_tap, serve_everything

PACKAGE = Path(tap_analytics.__file__).parent


@pytest.mark.parametrize("hook", PRIVATE_HOOKS, ids=lambda h: h.qualname)
def test_private_hook_still_exists_with_the_same_parameters(hook: PrivateHook) -> None:
    problem = hook.problem()
    assert problem is None, problem


def test_hook_check_reports_a_changed_signature() -> None:
    """The check above can fail: a hook expecting other parameters is reported by name."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    hook = PrivateHook(Stream, "_write_record_message", (("message", positional),))
    assert "Stream._write_record_message changed its parameters" in str(hook.problem())
    missing = PrivateHook(Stream, "_no_such_hook", ())
    assert "Stream._no_such_hook no longer exists" in str(missing.problem())


# -- PluginBase._validate_config -------------------------------------------------------------


def test_validate_config_is_what_the_sdk_calls_to_check_settings() -> None:
    calls: list[bool] = []

    class Probe(TapAnalytics):
        def config_problems(self) -> list[str]:
            calls.append(True)
            return ["setting 'probe': fails."]

    with pytest.raises(ConfigValidationError) as info:
        Probe(config={"api_key": "k", "base_url": "https://x.example"}, parse_env_config=False)
    assert calls, "singer-sdk no longer calls PluginBase._validate_config when a tap is created"
    assert info.value.errors == ["setting 'probe': fails."], (
        "PluginBase._validate_config: the SDK's messages replaced the tap's"
    )
    calls.clear()
    Probe(config={}, parse_env_config=False, validate_config=False)  # discovery: no raise
    assert calls == [True], "PluginBase._validate_config(raise_errors=False) is no longer called"


# -- Stream._write_record_message, _stream_version, state_manager.is_flushed -------------------


def test_write_record_message_is_called_once_per_emitted_record(monkeypatch) -> None:
    calls: list[str] = []
    original = CompatStream._write_record_message

    def spy(self: CompatStream, record: dict[str, Any]) -> None:
        calls.append(self.name)
        original(self, record)

    monkeypatch.setattr(CompatStream, "_write_record_message", spy)
    with mock_api() as api:
        serve_everything(api, apps=2, per_app=3)
        out = run_tap(config())
    emitted = [m["stream"] for m in out.of_type("RECORD")]
    assert emitted and sorted(calls) == sorted(emitted), (
        "singer-sdk no longer calls Stream._write_record_message once per record: the fast "
        "record path is bypassed"
    )


def test_fast_path_mirrors_the_sdk_record_writer() -> None:
    """What the fast path copies from the SDK: `_stream_version` and `is_flushed`."""
    tap = TapAnalytics(config=config(), parse_env_config=False)
    stream = tap.streams["applications"]
    assert hasattr(stream, "_stream_version"), "Stream._stream_version is gone"
    assert isinstance(stream.state_manager.is_flushed, bool), "state_manager.is_flushed is gone"
    sent: list[Any] = []
    tap.write_message = sent.append  # type: ignore[method-assign,misc,assignment]
    stream._stream_version = 42
    stream.state_manager.is_flushed = True
    Stream._write_record_message(stream, make_records("app", 1, stream="applications")[0])
    (message,) = sent
    assert isinstance(message, RecordMessage)
    assert message.version == 42, "Stream._stream_version no longer sets RECORD versions"
    assert stream.state_manager.is_flushed is False, (
        "Stream._write_record_message no longer marks state_manager.is_flushed = False"
    )


# -- Stream._increment_stream_state ----------------------------------------------------------


def test_increment_stream_state_receives_each_record_and_sets_the_bookmark(monkeypatch) -> None:
    calls: list[dict[str, Any]] = []
    original = CompatStream._increment_stream_state

    def spy(self: CompatStream, latest_record: dict[str, Any], **kwargs: Any) -> None:
        calls.append(kwargs)
        original(self, latest_record, **kwargs)

    monkeypatch.setattr(CompatStream, "_increment_stream_state", spy)
    with mock_api() as api:
        api.serve(
            "/v1/app",
            [
                {"id": "app_1", "updatedAt": "2024-05-01T10:00:00.5Z"},
                {"id": "app_2", "updatedAt": "2024-05-01T10:00:00Z"},  # sorts last as text
            ],
        )
        for path in ("/v1/app/app_1/endpoint", "/v1/app/app_2/endpoint"):
            api.serve(path, [])
            api.serve(path.replace("endpoint", "integration"), [])
        catalog = TapAnalytics(config=None, parse_env_config=False, validate_config=False)
        selected = catalog.catalog_dict
        for entry in selected["streams"]:
            for md in entry["metadata"]:
                if md["breadcrumb"] == []:
                    md["metadata"]["selected"] = entry["tap_stream_id"] in (
                        "applications",
                        "endpoints",
                        "integrations",
                    )
        out = run_tap(config(), catalog=selected)
    assert len(calls) >= 2 and all("context" in c for c in calls), (
        "singer-sdk no longer calls Stream._increment_stream_state(record, context=...)"
    )
    bookmark = out.last_state["bookmarks"]["applications"]["replication_key_value"]
    assert bookmark == "2024-05-01T10:00:00.500000000Z", (
        "Stream._increment_stream_state: the bookmark is no longer the canonical max"
    )


# -- private names stay in compat.py ---------------------------------------------------------


def _sdk_private_names() -> set[str]:
    """Private names of singer-sdk's Tap and Stream: class attributes and instance state."""

    class BareTap(Tap):
        name = "bare"

        def discover_streams(self) -> list[Stream]:
            return []

    class BareStream(Stream):
        def get_records(self, context: Any) -> Any:
            return []

    tap = BareTap(config={}, parse_env_config=False, validate_config=False)
    stream = BareStream(tap=tap, name="bare", schema={"properties": {}})
    names = set(dir(Stream)) | set(dir(Tap)) | set(vars(tap)) | set(vars(stream))
    names |= set(vars(stream.state_manager)) | set(dir(metrics.Counter)) | set(dir(metrics.Timer))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _offenders(package: Path) -> list[str]:
    private = _sdk_private_names()
    offenders = []
    for path in sorted(package.glob("*.py")):
        if path.name == "compat.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            for module in modules:
                if module.startswith("singer_sdk") and re.search(r"\._", module):
                    line = getattr(node, "lineno", 0)
                    offenders.append(f"{path.name}:{line}: import {module}")
            if isinstance(node, ast.FunctionDef) and node.name in private:
                offenders.append(f"{path.name}:{node.lineno}: def {node.name}")
        if "is_flushed" in source:
            offenders.append(f"{path.name}: is_flushed")
    return offenders


def test_sdk_private_names_are_used_in_compat_only() -> None:
    offenders = _offenders(PACKAGE)
    assert offenders == [], "singer-sdk internals outside tap_analytics/compat.py"


# -- Stream._write_activate_version_message, _write_schema_message, _initialized_at -----------


def _full_table_catalog(streams: tuple[str, ...]) -> dict[str, Any]:
    catalog = TapAnalytics(config=None, parse_env_config=False, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        entry["replication_method"] = "FULL_TABLE"
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def test_write_activate_version_message_is_what_sync_calls_before_the_records(
    monkeypatch,
) -> None:
    """`Stream.sync` calls the hook once per sync, before the records, with the version the
    records carry; `_initialized_at // 1000` is that version."""
    held: list[tuple[str, int, int]] = []
    original = CompatStream._write_activate_version_message

    def spy(self: CompatStream, full_table_version: int) -> None:
        held.append((self.name, full_table_version, self.default_table_version()))
        original(self, full_table_version)

    monkeypatch.setattr(CompatStream, "_write_activate_version_message", spy)
    with mock_api() as api:
        serve_everything(api, apps=2, per_app=3)
        out = run_tap(
            config(emit_activate_version_messages=True),
            catalog=_full_table_catalog(("applications", "endpoints")),
        )
    assert [name for name, _, _ in held] == ["applications", "endpoints", "endpoints"], (
        "singer-sdk no longer calls Stream._write_activate_version_message once per sync() "
        "of a FULL_TABLE stream"
    )
    versions = {m.get("version") for m in out.of_type("RECORD")}
    assert versions == {held[0][1]}, "RECORD versions differ from the one sync() announced"
    assert all(v == default for _, v, default in held), (
        "Stream._initialized_at // 1000 is no longer the version Stream.sync gives records"
    )
    # held back by the tap: sent once per stream, after the records
    activations = out.of_type("ACTIVATE_VERSION")
    assert [m["stream"] for m in activations] == ["applications", "endpoints"]
    assert out.messages.index(activations[0]) > max(
        i for i, m in enumerate(out.messages) if m["type"] == "RECORD"
    )


def test_send_activate_version_writes_schema_then_activate_version(monkeypatch) -> None:
    """`Stream._write_schema_message` and `Stream._write_activate_version_message` (the SDK's
    own, reached through `send_activate_version`) write these two messages."""
    tap = TapAnalytics(config=config(), parse_env_config=False)
    stream = tap.streams["endpoints"]
    assert isinstance(stream, CompatStream)
    sent: list[Any] = []
    monkeypatch.setattr(tap, "write_message", sent.append)
    stream.send_activate_version(7)
    assert [(m.type, m.stream) for m in sent] == [
        ("SCHEMA", "endpoints"),
        ("ACTIVATE_VERSION", "endpoints"),
    ], "Stream._write_schema_message / _write_activate_version_message changed what they write"
    assert sent[1].version == 7
    assert isinstance(stream._initialized_at, int), "Stream._initialized_at is gone"


# -- Stream._process_record: children of a record that is not emitted ---------------------------


def test_process_record_syncs_children_of_unchanged_parents_unless_a_map_filters_them() -> None:
    """No application is newer than its bookmark, so none is emitted; their children are still
    synced through `Stream._process_record`, which skips those of a parent a map filters out."""
    state = {
        "bookmarks": {
            "applications": {
                "replication_key": "updatedAt",
                "replication_key_value": "2999-01-01T00:00:00Z",
            }
        }
    }
    maps = {"applications": {"__filter__": "id != 'app_000001'"}}
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=2)
        out = run_tap(config(stream_maps=maps), state=state)
    assert out.records("applications") == []
    assert {e["app_id"] for e in out.records("endpoints")} == {"app_000000", "app_000002"}, (
        "Stream._process_record no longer syncs a record's children, or no longer skips those "
        "of a record a stream map filters out"
    )


# -- the mapper's classes: when the fast record path is taken ---------------------------------


def test_records_pass_unchanged_only_without_maps_flattening_or_deselection() -> None:
    def passes(**settings: Any) -> dict[str, bool]:
        tap = TapAnalytics(config=config(**settings), parse_env_config=False)
        return {
            name: stream.records_pass_unchanged()
            for name, stream in tap.streams.items()
            if isinstance(stream, CompatStream)
        }

    assert all(passes().values())
    mapped = passes(stream_maps={"applications": {"name": "str(name).upper()"}})
    assert not mapped["applications"] and mapped["tokens"], (
        "SameRecordTransform no longer marks a stream without a map"
    )
    assert not any(passes(flattening_enabled=True, flattening_max_depth=1).values()), (
        "StreamMap.flattening_enabled no longer says that flattening is on"
    )


# -- Stream._increment_stream_state: the unsorted stream's progress markers --------------------


def test_progress_markers_are_created_as_the_sdk_creates_them() -> None:
    """The entry the tap creates equals the one the SDK's own `increment_state` creates."""
    from singer_sdk.helpers import _state

    sdk_state: dict[str, Any] = {}
    _state.increment_state(
        sdk_state,
        latest_record={"updatedAt": "2024-01-01T00:00:00Z"},
        replication_key="updatedAt",
        is_sorted=False,
        check_sorted=True,
    )
    markers = dict(sdk_state[PROGRESS_MARKERS])
    for key in ("replication_key", "replication_key_value"):
        markers.pop(key)
    assert markers == UNSORTED_NOTE, "singer-sdk writes other progress markers now"


def test_a_clean_run_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at WARNING or above on a run without a problem (the SDK's notice that an unsorted
    stream's progress is not resumable, once per stream, is not logged either)."""
    caplog.set_level(logging.WARNING)
    with mock_api() as api:
        serve_everything(api, apps=3, per_app=2)
        first = run_tap(config())
        second = run_tap(config(), state=first.last_state)
    assert first.records("endpoints") and second.of_type("STATE")
    loud = [(r.name, r.levelname) for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == []
    bookmarks = first.last_state["bookmarks"]
    assert all(PROGRESS_MARKERS not in b for b in bookmarks.values()), "markers not promoted"


# -- Stream.get_record_counter / get_sync_timer: one set of metrics per child stream -----------


def test_a_child_stream_reports_its_metrics_once_per_run(caplog: pytest.LogCaptureFixture) -> None:
    """The documented override points (`tap_analytics.quiet`): the SDK still uses the counter
    and the timer they return once per sync, so a child stream synced for every parent
    reports one record count and one duration for the run."""
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    with mock_api() as api:
        serve_everything(api, apps=4, per_app=2)
        run_tap(config())
    points: list[Any] = [
        r.args[0]
        for r in caplog.records
        if r.name == "singer_sdk.metrics" and isinstance(r.args, tuple) and r.args
    ]
    endpoints = [(p.metric, p.value) for p in points if p.tags.get("stream") == "endpoints"]
    assert sorted(m for m, _ in endpoints) == ["record_count", "sync_duration"], endpoints
    assert dict(endpoints)["record_count"] == 8


# -- PluginBase.cb_config: the command line's --config callback --------------------------------


@pytest.mark.parametrize(
    ("content", "named"),
    [(None, "not found"), ("{", "not JSON"), ("[1, 2]", "no JSON object"), (b"\xff", "UTF-8")],
)
def test_cb_config_is_what_the_command_line_calls_for_config_files(
    tmp_path: Path, content: str | bytes | None, named: str
) -> None:
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    command = TapAnalytics.get_singer_command()
    with pytest.raises(ConfigFileError) as info:
        command.main(["--config", str(path), "--discover"], standalone_mode=False)
    assert str(path) in str(info.value) and named in str(info.value), (
        "singer-sdk's command line no longer reads --config through PluginBase.cb_config"
    )
