"""`tap-analytics` as a process against the local fake API, compared with its dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics_api.streams import STREAMS
from fake_api import DatasetConfig
from tests.conftest import tap_config_for
from tests.support import all_dumps, assert_equals_dump, normalized, run_tap_process

pytestmark = pytest.mark.e2e


def _records(run) -> dict:
    return {s.name: run.records(s.name) for s in STREAMS}


@pytest.mark.parametrize("concurrency", [1, 8])
def test_full_run_equals_dump(fake_api, tmp_path: Path, concurrency: int) -> None:
    run = run_tap_process(tmp_path, tap_config_for(fake_api, max_concurrency=concurrency))
    assert run.returncode == 0, run.stderr[-2000:]
    assert_equals_dump(_records(run), all_dumps(fake_api))
    # per-stream order is the API's order: parents in id order, children by parent
    for stream in STREAMS:
        assert [normalized(stream.name, r) for r in run.records(stream.name)] == [
            normalized(stream.name, r) for r in fake_api.dump(stream.name)
        ], stream.name


def test_incremental_run_after_mutation_emits_exactly_the_mutated(fake_api, tmp_path: Path) -> None:
    first = run_tap_process(tmp_path, tap_config_for(fake_api))
    assert first.returncode == 0, first.stderr[-2000:]
    mutated = fake_api.mutate(share=0.2, seed=7)
    assert any(mutated.values())
    second = run_tap_process(tmp_path, tap_config_for(fake_api), state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    dump = all_dumps(fake_api)
    for stream in STREAMS:
        got = second.records(stream.name)
        assert sorted(r[stream.primary_key] for r in got) == sorted(mutated[stream.name]), (
            stream.name
        )
        by_key = {r[stream.primary_key]: normalized(stream.name, r) for r in dump[stream.name]}
        for record in got:
            assert normalized(stream.name, record) == by_key[record[stream.primary_key]]
    # endpoints changed under applications that did not change are among them
    changed_apps = set(mutated["applications"])
    assert any(r["app_id"] not in changed_apps for r in second.records("endpoints"))
    third = run_tap_process(tmp_path, tap_config_for(fake_api), state=second.last_state)
    assert third.of_type("RECORD") == []


def test_request_count_is_exactly_what_pagination_needs(fake_api_factory, tmp_path: Path) -> None:
    dataset = DatasetConfig(
        applications=7,
        endpoints_per_app=5,
        integrations_per_app=0,
        event_types=9,
        tokens=4,
        ingest_sources=2,
        endpoints_per_source=4,
        webhook_endpoints=6,
        archived_share=0.0,
    )
    api = fake_api_factory(dataset)
    page = 3
    run = run_tap_process(tmp_path, tap_config_for(api, page_size=page))
    assert run.returncode == 0, run.stderr[-2000:]
    pages = lambda n: max(1, -(-n // page))  # noqa: E731 - ceil, an empty list is one request
    expected = (
        pages(7)
        + 7 * pages(5)
        + 7 * pages(0)  # applications, endpoints, integrations
        + pages(9)
        + pages(4)
        + pages(2)
        + 2 * pages(4)
        + pages(6)
    )
    stats = api.stats()
    assert stats["total"] == expected, stats
    assert_equals_dump(_records(run), all_dumps(api))


def test_deleted_parent_skips_its_children_only(fake_api, tmp_path: Path) -> None:
    apps = fake_api.dump("applications")
    gone = apps[1]["id"]
    fake_api.delete_parents("applications", [gone])
    run = run_tap_process(tmp_path, tap_config_for(fake_api))
    assert run.returncode == 0, run.stderr[-2000:]
    assert gone in run.stderr and "404" in run.stderr
    assert not [r for r in run.records("endpoints") if r["app_id"] == gone]
    assert_equals_dump(_records(run), all_dumps(fake_api))


def test_a_clean_run_says_nothing_but_singer_metrics_at_the_default_level(
    fake_api, tmp_path: Path
) -> None:
    """Singer's convention (METRIC lines on stderr) stays; the tap's INFO lines and warnings
    that are true of every run do not show unless a level is set (errors: test_tap_errors)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
    run = run_tap_process(tmp_path, tap_config_for(fake_api), env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and all("METRIC: " in line for line in lines), run.stderr[-2000:]
    for stream in STREAMS:  # one record count per stream, children included
        counts = [line for line in lines if f'"stream":"{stream.name}"' in line]
        assert sum('"record_count"' in line for line in counts) == 1, stream.name
    verbose = run_tap_process(tmp_path, tap_config_for(fake_api), env={**env, "LOGLEVEL": "INFO"})
    assert len(verbose.stderr.splitlines()) > len(lines)


def test_cli_test_mode_and_about(fake_api, tmp_path: Path) -> None:
    run = run_tap_process(tmp_path, tap_config_for(fake_api), extra_args=["--test"])
    assert run.returncode == 0, run.stderr[-2000:]
    about = subprocess.run(
        [sys.executable, "-m", "tap_analytics", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "| api_key" in about.stdout and "| page_size" in about.stdout
