"""Issue 7.2: faults beyond the retry budget.

The run exits non-zero with a message naming the stream, the path and the last status; the
failing request was tried exactly 1 + max_retries times; no STATE (emitted, or committed by the
bridge) covers data that was not emitted; a rerun with faults off from the last state delivers
exactly what is missing, so first run + rerun merged on keys equal the dump.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from analytics_api.streams import STREAMS
from fake_api import DatasetConfig, FaultConfig, FaultRule
from tests.e2e.bridge_support import assert_tables_equal_dump, pending_packages, stored_state
from tests.reliability.support import (
    Workspace,
    assert_final_state,
    assert_no_duplicate_keys,
    assert_states_only_cover_emitted,
    assert_stored_state_not_ahead,
    bookmark,
    covered_by,
    failing_path,
    merged,
)
from tests.support import all_dumps, assert_equals_dump, records_by_stream

pytestmark = pytest.mark.e2e

DATASET = DatasetConfig(applications=10, endpoints_per_app=3, event_types=12, webhook_endpoints=6)


SCENARIOS = [
    # (fault kind, stream, what the message says about the last failure, max_concurrency)
    ("503", "event_types", "HTTP 503", 1),
    ("429-no-retry-after", "endpoints", "HTTP 429", 8),
    ("reset", "ingest_source_endpoint", "connection reset by the server", 1),
    ("truncated", "tokens", "HTTP 200 with a body that is not valid JSON", 8),
    ("slow", "webhook_endpoint", "timed out after 0.5 s", 1),
]


@pytest.mark.parametrize(("kind", "stream", "status", "concurrency"), SCENARIOS)
def test_beyond_budget_fails_clearly_keeps_state_honest_and_rerun_completes(
    ws: Workspace, fake_api_factory: Any, kind: str, stream: str, status: str, concurrency: int
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    path = failing_path(api, stream)
    api.set_faults(FaultConfig(retry_after="0", slow_seconds=1.0, rules=(FaultRule(kind, path),)))
    config = ws.config_for(api, page_size=4, max_concurrency=concurrency, request_timeout=0.5)

    first = ws.tap(config)
    assert first.returncode != 0
    error = [line for line in first.stderr.splitlines() if "giving up after 3 retries" in line]
    assert error, first.stderr[-3000:]
    assert f"stream '{stream}'" in error[-1] and f"GET {path}:" in error[-1], error[-1]
    assert f"last failure: {status}" in error[-1], error[-1]
    deadline = time.monotonic() + 2  # a `slow` request is counted when its sleep ends
    while api.stats()["by_path"].get(path, 0) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.stats()["by_path"][path] == 4  # one try and three retries, no more

    dumps = all_dumps(api)
    assert_states_only_cover_emitted(first.messages, dumps)
    assert all(bookmark(m["value"], stream) is None for m in first.of_type("STATE"))
    assert_no_duplicate_keys(records_by_stream(first.messages))

    api.clear_faults()
    second = ws.tap(config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    again = records_by_stream(second.messages)
    assert_no_duplicate_keys(again)
    for definition in STREAMS:  # the rerun emits exactly what the first run's state leaves out
        dump = dumps[definition.name]
        done = covered_by(definition.name, dump, bookmark(first.last_state, definition.name))
        want = {r[definition.primary_key] for r in dump} - done
        got = {r[definition.primary_key] for r in again[definition.name]}
        assert got == want, definition.name
    assert_equals_dump(merged(records_by_stream(first.messages), again), dumps)
    assert_states_only_cover_emitted(second.messages, dumps, initial_state=first.last_state)
    assert_final_state(second.last_state, dumps)


def test_beyond_budget_through_the_bridge_commits_no_state_past_loaded_rows(
    ws: Workspace, fake_api_factory: Any
) -> None:
    api = fake_api_factory(DATASET, token=ws.key)
    path = failing_path(api, "endpoints")
    api.set_faults(FaultConfig(rules=(FaultRule("502", path),)))
    config = ws.config_for(api, page_size=4)

    first = ws.bridge_run(config, "--commit-every", "40")
    assert first.returncode == 4, first.stderr[-3000:]  # the tap failed
    assert api.stats()["by_path"][path] == 4  # the request and its 3 retries, then no more
    assert f"stream 'endpoints', GET {path}" in first.stderr  # the error names where it failed
    dumps = all_dumps(api)
    assert_stored_state_not_ahead(ws.root, dumps)
    assert bookmark(stored_state(ws.root), "endpoints") is None
    assert pending_packages(ws.root) == []

    api.clear_faults()
    second = ws.bridge_run(config)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_tables_equal_dump(ws.root, dumps)
    assert_final_state(stored_state(ws.root), dumps)
