"""`tap-analytics` as a process in the deletion mode (FULL_TABLE + ACTIVATE_VERSION), against the
fake API and its ground truth: what a standard Singer target needs to delete exactly the records
that are gone upstream, and nothing when a run fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analytics_api.streams import STREAMS, STREAMS_BY_NAME, child_path
from fake_api import DatasetConfig, FakeAPI, FaultRule
from tap_analytics.tap import TapAnalytics

pytestmark = pytest.mark.e2e

NAMES = [s.name for s in STREAMS]


@dataclass
class Run:
    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.of("RECORD") if m["stream"] == stream]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def activations(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for m in self.of("ACTIVATE_VERSION"):
            out.setdefault(m["stream"], []).append(m["version"])
        return out

    @property
    def last_state(self) -> dict[str, Any]:
        return self.of("STATE")[-1]["value"]


def full_table_catalog(streams: list[str] | None = None) -> dict[str, Any]:
    """The discovered catalog as Meltano writes it for `metadata: {'*': {replication-method:
    FULL_TABLE}}`: `replication_method` on the stream and `replication-method` in its metadata."""
    catalog = TapAnalytics(config=None, parse_env_config=False, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        full = streams is None or entry["tap_stream_id"] in streams
        if full:
            entry["replication_method"] = "FULL_TABLE"
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = True
                if full:
                    md["metadata"]["replication-method"] = "FULL_TABLE"
    return catalog


def run_tap(
    tmp_path: Path,
    api: FakeAPI,
    *,
    catalog: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """`python -m tap_analytics` as users run it; stdout parsed as Singer messages."""
    config = {"api_key": api.token, "base_url": api.url, **settings}
    args = [sys.executable, "-m", "tap_analytics"]
    for flag, value in (("config", config), ("catalog", catalog), ("state", state)):
        if value is not None:
            path = tmp_path / f"{flag}.json"
            path.write_text(json.dumps(value))
            args += [f"--{flag}", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return Run(result.returncode, messages, result.stderr)


def deletion_run(tmp_path: Path, api: FakeAPI, **settings: Any) -> Run:
    return run_tap(
        tmp_path,
        api,
        catalog=full_table_catalog(),
        emit_activate_version_messages=True,
        **settings,
    )


def normalized(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in STREAMS_BY_NAME[stream].schema["properties"]}


def assert_stream_equals_dump(run: Run, api: FakeAPI, stream: str) -> None:
    got = [normalized(stream, r) for r in run.records(stream)]
    want = [normalized(stream, r) for r in api.dump(stream)]
    assert got == want, stream


def assert_one_activation_after_the_scan(run: Run, stream: str) -> int:
    """Exactly one ACTIVATE_VERSION for `stream`, after its last RECORD; every RECORD of the
    stream carries its version. Returns the version."""
    positions = [
        i
        for i, m in enumerate(run.messages)
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream
    ]
    assert len(positions) == 1, (stream, len(positions))
    (position,) = positions
    version = run.messages[position]["version"]
    assert isinstance(version, int), stream
    records = [
        (i, m)
        for i, m in enumerate(run.messages)
        if m["type"] == "RECORD" and m["stream"] == stream
    ]
    assert all(i < position for i, _ in records), f"{stream}: a RECORD after ACTIVATE_VERSION"
    assert all(m.get("version") == version for _, m in records), stream
    schemas = [
        i for i, m in enumerate(run.messages) if m["type"] == "SCHEMA" and m["stream"] == stream
    ]
    assert schemas and schemas[0] < position, f"{stream}: no SCHEMA before ACTIVATE_VERSION"
    return version


@pytest.mark.parametrize("concurrency", [1, 8])
def test_one_activate_version_per_stream_after_its_scan(
    fake_api: FakeAPI, tmp_path: Path, concurrency: int
) -> None:
    run = deletion_run(tmp_path, fake_api, max_concurrency=concurrency)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(run.activations()) == sorted(NAMES)
    versions = {assert_one_activation_after_the_scan(run, name) for name in NAMES}
    assert len(versions) == 1, "one version per run for every stream"
    for name in NAMES:
        assert_stream_equals_dump(run, fake_api, name)
    # a child stream's ACTIVATE_VERSION comes after its parent's last child sync: after the
    # parent's last RECORD too
    for stream in STREAMS:
        if stream.parent:
            last_parent = max(
                i
                for i, m in enumerate(run.messages)
                if m["type"] == "RECORD" and m["stream"] == stream.parent
            )
            activation = next(
                i
                for i, m in enumerate(run.messages)
                if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream.name
            )
            assert activation > last_parent, stream.name


def test_second_run_after_deletions_sends_exactly_the_new_dump(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    first = deletion_run(tmp_path, fake_api)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {
        name: {r[STREAMS_BY_NAME[name].primary_key] for r in first.records(name)} for name in NAMES
    }
    deleted = fake_api.delete_records(share=0.2, seed=11)
    second = deletion_run(tmp_path, fake_api, state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    for name in NAMES:
        version = assert_one_activation_after_the_scan(second, name)
        assert version >= first.activations()[name][0], name
        assert_stream_equals_dump(second, fake_api, name)
        # what a target applying the version removes: exactly the deleted records
        pk = STREAMS_BY_NAME[name].primary_key
        kept = {r[pk] for r in second.records(name)}
        assert before[name] - kept == set(deleted[name]), name
        assert deleted[name], name


def test_a_child_path_failing_beyond_its_retries_sends_no_activate_version(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    """ingest sources sync after applications and event types: those complete, it does not."""
    source = fake_api.dump("ingest_source")[1]["id"]
    path = child_path(STREAMS_BY_NAME["ingest_source_endpoint"].path, src_id=source)
    fake_api.add_fault_rule(FaultRule("503", path))
    run = deletion_run(tmp_path, fake_api, max_retries=1, backoff_factor=0)
    assert run.returncode != 0
    sent = run.activations()
    assert "ingest_source_endpoint" not in sent and "ingest_source" not in sent
    assert run.records("ingest_source_endpoint"), "the scan was under way when it failed"
    for name in ("applications", "endpoints", "integrations", "event_types"):
        assert_one_activation_after_the_scan(run, name)
    assert fake_api.stats()["by_path"][path] == 2  # one try and one retry


def test_a_failing_child_path_under_the_first_parent_stops_every_activation(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    app = fake_api.dump("applications")[3]["id"]
    path = child_path(STREAMS_BY_NAME["endpoints"].path, app_id=app)
    fake_api.add_fault_rule(FaultRule("500", path))
    run = deletion_run(tmp_path, fake_api, max_retries=0, max_concurrency=1)
    assert run.returncode != 0
    assert run.activations() == {}
    assert run.records("endpoints"), "endpoints of earlier applications were sent"


def test_children_of_a_parent_answering_404_mid_run_count_as_deleted(
    fake_api: FakeAPI, tmp_path: Path
) -> None:
    """The parent is still listed but its child paths answer 404 (deleted after the parent
    list was read): its children are absent from the version, the stream still activates."""
    apps = fake_api.dump("applications")
    gone = [apps[2]["id"], apps[-1]["id"]]  # one in the middle, the last parent
    fake_api.delete_parents("applications", gone)
    run = deletion_run(tmp_path, fake_api)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("applications", "endpoints", "integrations"):
        assert_one_activation_after_the_scan(run, name)
    assert {r["id"] for r in run.records("applications")} >= set(gone)
    for name in ("endpoints", "integrations"):
        assert not {r["app_id"] for r in run.records(name)} & set(gone)
        assert_stream_equals_dump(run, fake_api, name)
    assert fake_api.stats()["by_status"].get("404", 0) >= 2


def test_state_does_not_grow_with_the_number_of_parents(
    fake_api_factory: Any, tmp_path: Path
) -> None:
    sizes = {}
    for apps in (4, 40):
        api = fake_api_factory(DatasetConfig(applications=apps, ingest_sources=apps // 2))
        run = deletion_run(tmp_path, api)
        assert run.returncode == 0, run.stderr[-2000:]
        assert len(run.records("endpoints")) == apps * 5
        largest = max(len(json.dumps(m["value"], sort_keys=True)) for m in run.of("STATE"))
        sizes[apps] = (len(json.dumps(run.last_state, sort_keys=True)), largest)
    assert sizes[4] == sizes[40]


def test_incremental_default_sends_no_activate_version(fake_api: FakeAPI, tmp_path: Path) -> None:
    run = run_tap(tmp_path, fake_api, emit_activate_version_messages=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.of("ACTIVATE_VERSION") == []
    assert all("version" not in m for m in run.of("RECORD"))
    for name in NAMES:
        assert_stream_equals_dump(run, fake_api, name)
    # and incremental as today: a second run from the state sends nothing
    again = run_tap(tmp_path, fake_api, state=run.last_state, emit_activate_version_messages=True)
    assert again.returncode == 0 and again.of("RECORD") == [] and again.of("ACTIVATE_VERSION") == []
